"""The long-running service: the daemon (``daemon``), its APScheduler jobs (``scheduler``),
cron triggers (``triggers``) and the run log (``runlog``).

Produces scheduled, recorded runs. May import every stage and the store.
"""
