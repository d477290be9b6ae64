"""The Python API: :func:`generate` runs the pipeline of ``apg run`` from a DataFrame or a
config and returns a :class:`Run`; :class:`PersonaModel` assigns new users like ``apg assign``.

Modules: ``inputs`` (the config from a path, dict or model with keyword overrides; a DataFrame
as the source table), ``run`` (:func:`generate`, :func:`execute`, :class:`Run`,
:class:`Persona`), ``model`` (:class:`PersonaModel`), ``display`` (persona cards for notebooks).
See docs/api.md.

Produces runs for Python callers and for the CLI (``apg run`` calls :func:`execute`). May import
every stage, the pipeline, the report and the store; never the CLI or the web app.
"""

from __future__ import annotations

from apg.api.model import PersonaModel
from apg.api.run import Persona, Run, execute, generate

__all__ = ["Persona", "PersonaModel", "Run", "execute", "generate"]
