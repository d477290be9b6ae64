"""``python -m apg``: the same as the ``apg`` command."""

from apg.cli.main import entrypoint

entrypoint()
