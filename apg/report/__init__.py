"""The report: the output folder (``folder``: what may be replaced; ``outputs``: the files),
``report.md`` (``markdown``) and the self-contained ``report.html`` (``html``, ``charts``,
``avatars``, ``templates/``).

Produces files from a run's result. May import every stage up to and including the pipeline.
"""
