"""``python -m apg``: the same as the ``apg`` command."""

from apg.cli import entrypoint

entrypoint()
