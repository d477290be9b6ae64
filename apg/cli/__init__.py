"""The ``apg`` command line: ``main`` (the group, ``sample``, ``sources``), ``run`` (with
``options``, the parsers of its quick form) and one module per command group (``store``,
``review``, ``web``, ``daemon``). Thin: each command calls
the stages, the store or the service and prints.

May import everything below it; nothing imports it but ``apg.__main__``.
"""
