"""apg: automatic persona generation from user data.

The Python API (docs/api.md)::

    import apg

    run = apg.generate(users, id="user_id", behavioral=["logins", "purchases"], seed=1)
    run.personas                      # [Persona(id=..., name=..., size=..., share=...), ...]
    run.save("apg-output")            # the files of `apg run --out apg-output`
    run.model.predict(new_users)      # persona id per row, None for noise

The API is imported on first use, so ``import apg`` (and the command line) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apg.errors import ApgError
from apg.version import __version__

if TYPE_CHECKING:
    from apg.api import Persona, PersonaModel, Run, generate

__all__ = ["ApgError", "Persona", "PersonaModel", "Run", "__version__", "generate"]

_API = ("Persona", "PersonaModel", "Run", "generate")


def __getattr__(name: str) -> Any:
    # PEP 562: the API pulls in pandas, scikit-learn and SQLAlchemy; only load it when asked.
    if name in _API:
        import apg.api

        value = getattr(apg.api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'apg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
