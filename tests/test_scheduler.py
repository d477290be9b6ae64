"""Trigger maths with fixed clocks, and the scheduled job function called directly."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from daemon_helpers import Db, write_config, write_text, write_users

from apg.config import RetryConfig, ScheduleConfig, load_config
from apg.errors import ConfigError
from apg.service import triggers
from apg.service.scheduler import job_db_url, scheduled_run
from apg.store import Store, runstate
from apg.store.runner import Cancel, RunInterrupted, execute_run

MON_0300 = datetime(2024, 5, 6, 3, 0, tzinfo=UTC)  # a Monday


def test_triggers_default_cron_fires_on_mondays_at_3_utc() -> None:
    trigger = triggers.build_trigger(ScheduleConfig())
    assert trigger.get_next_fire_time(None, MON_0300 - timedelta(days=3)) == MON_0300
    assert trigger.get_next_fire_time(None, MON_0300) == MON_0300
    after = MON_0300 + timedelta(seconds=1)
    assert trigger.get_next_fire_time(MON_0300, after) == MON_0300 + timedelta(weeks=1)
    assert triggers.describe(trigger, "0 3 * * mon") == "cron '0 3 * * mon' (UTC)"


def test_triggers_cron_keeps_local_hour_in_its_time_zone_across_dst() -> None:
    trigger = triggers.build_trigger(ScheduleConfig(timezone="Europe/Berlin"))
    berlin = ZoneInfo("Europe/Berlin")
    before = trigger.get_next_fire_time(None, datetime(2024, 3, 24, 12, tzinfo=UTC))
    after = trigger.get_next_fire_time(before, before + timedelta(seconds=1))
    assert before == datetime(2024, 3, 25, 3, tzinfo=berlin)  # CET, 02:00 UTC
    assert after == datetime(2024, 4, 1, 3, tzinfo=berlin)  # CEST (DST began 31 March)
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)


def test_triggers_day_names_and_ranges_fire_on_those_days() -> None:
    tz = ZoneInfo("UTC")
    weekdays = triggers.cron_trigger("30 2 * * mon-fri", tz)
    saturday = datetime(2024, 5, 11, tzinfo=UTC)
    assert weekdays.get_next_fire_time(None, saturday) == datetime(2024, 5, 13, 2, 30, tzinfo=UTC)
    sunday = triggers.cron_trigger("0 3 * * sun", tz)
    assert sunday.get_next_fire_time(None, MON_0300) == datetime(2024, 5, 12, 3, tzinfo=UTC)


def test_triggers_refuse_numeric_day_of_week_and_say_why() -> None:
    with pytest.raises(ConfigError) as exc:
        triggers.build_trigger(ScheduleConfig(cron="0 3 * * 1"))
    assert str(exc.value) == (
        "schedule.cron: '0 3 * * 1': write the day of week with names (mon, tue, …, sun; "
        "ranges like mon-fri), not numbers: crontab counts 0 as Sunday but APScheduler as Monday"
    )


@pytest.mark.parametrize(
    ("schedule", "cron", "message"),
    [
        ({"cron": "0 3 * mon"}, None, "schedule.cron: '0 3 * mon' has 4 fields; crontab text"),
        ({}, "61 3 * * mon", "--cron: '61 3 * * mon' is not valid crontab text"),
        ({"timezone": "Mars/Olympus"}, None, "schedule.timezone: unknown time zone 'Mars/Olym"),
    ],
)
def test_triggers_refuse_bad_schedule_naming_the_setting(
    schedule: dict[str, str], cron: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        triggers.build_trigger(ScheduleConfig(**schedule), cron=cron)


def test_triggers_interval_overrides_cron_and_counts_from_start() -> None:
    trigger = triggers.build_trigger(ScheduleConfig(), cron="0 4 * * tue", interval=1, now=MON_0300)
    first = trigger.get_next_fire_time(None, MON_0300)
    assert first == MON_0300
    assert trigger.get_next_fire_time(first, first + timedelta(seconds=0.5)) == MON_0300 + (
        timedelta(seconds=1)
    )
    assert triggers.describe(trigger) == "every 1s"


def test_triggers_same_schedule_ignores_interval_start_only() -> None:
    tz = ZoneInfo("UTC")
    cron = triggers.cron_trigger("0 3 * * mon", tz)
    assert triggers.same_schedule(cron, triggers.cron_trigger("0 3 * * mon", tz))
    assert not triggers.same_schedule(cron, triggers.cron_trigger("0 4 * * mon", tz))
    assert not triggers.same_schedule(cron, triggers.cron_trigger("0 3 * * mon", ZoneInfo("CET")))
    later = MON_0300 + timedelta(hours=5)
    assert triggers.same_schedule(
        triggers.interval_trigger(60, tz, MON_0300), triggers.interval_trigger(60, tz, later)
    )
    assert not triggers.same_schedule(
        triggers.interval_trigger(60, tz, MON_0300), triggers.interval_trigger(61, tz, MON_0300)
    )


def test_triggers_retry_comes_after_delay_never_past_next_fire_nor_attempts() -> None:
    retry = RetryConfig(attempts=3, delay_seconds=600)
    failed = MON_0300 + timedelta(minutes=1)
    week = MON_0300 + timedelta(weeks=1)
    assert triggers.retry_at(failed, retry, 0, week) == failed + timedelta(minutes=10)
    assert triggers.retry_at(failed, retry, 2, week) == failed + timedelta(minutes=10)
    assert triggers.retry_at(failed, retry, 3, week) is None  # 3 retries done
    assert triggers.retry_at(failed, retry, 0, failed + timedelta(minutes=10)) is None
    assert triggers.retry_at(failed, RetryConfig(attempts=0), 0, week) is None


def test_scheduler_job_db_url_never_carries_a_password() -> None:
    assert job_db_url("sqlite:////var/lib/apg/apg.db") == "sqlite:////var/lib/apg/apg.db"
    assert job_db_url("postgresql+psycopg://apg@db/apg") == "postgresql+psycopg://apg@db/apg"
    assert job_db_url("postgresql+psycopg://apg:s3cret@db/apg") is None


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, str]:
    data = write_users(tmp_path / "users.csv", seed=0)
    config = write_config(tmp_path / "daemon.yaml", {"kind": "file", "path": "users.csv"})
    return data, config, f"sqlite:///{tmp_path / 'apg.db'}"


def test_scheduled_run_succeeds_then_unchanged_then_reruns_on_new_data(
    setup: tuple[Path, Path, str],
) -> None:
    data, config, url = setup
    assert scheduled_run(str(config), url) == "succeeded"
    assert scheduled_run(str(config), url) == "unchanged"
    write_users(data, seed=1)
    assert scheduled_run(str(config), url, trigger="retry", attempt=2) == "succeeded"
    db = Db(url)
    first, same, second = db.runs()
    assert [r["status"] for r in (first, same, second)] == ["succeeded", "unchanged", "succeeded"]
    assert same["reason"] == (
        f"same data ({first['fingerprint'][:19]}…) and settings as {first['id']}"
    )
    assert same["previous_run_id"] == first["id"] and same["n_clusters"] is None
    assert db.count("apg_candidates", same["id"]) == db.count("apg_members", same["id"]) == 0
    assert (second["trigger"], second["attempt"]) == ("retry", 2)
    assert second["previous_run_id"] == first["id"]  # matched against the last personas
    db.close()


def test_scheduled_run_reruns_same_data_when_always_run_or_settings_changed(
    setup: tuple[Path, Path, str],
) -> None:
    _, config, url = setup
    assert scheduled_run(str(config), url) == "succeeded"
    text = config.read_text().replace('"n_init": 2', '"n_init": 3')
    write_text(config, text)
    assert scheduled_run(str(config), url) == "succeeded"  # settings changed
    write_text(config, text.replace('"schedule": {}', '"schedule": {"always_run": true}'))
    assert load_config(config).schedule.always_run
    assert scheduled_run(str(config), url) == "succeeded"  # schedule keys are not settings
    assert [r["status"] for r in Db(url).runs()] == ["succeeded"] * 3


def test_scheduled_run_records_failures_with_their_reason(setup: tuple[Path, Path, str]) -> None:
    data, config, url = setup
    write_text(data, "name,score\nann,1\n")
    assert scheduled_run(str(config), url) == "failed"
    write_text(config, "sources: [")
    assert scheduled_run(str(config), url, trigger="retry", attempt=1) == "failed"
    source, unreadable = Db(url).runs()
    assert source["status"] == "failed" and source["finished_at"]
    assert source["reason"].startswith("SourceError: source #1 (file users.csv): id column")
    assert source["error"] == source["reason"]
    assert unreadable["status"] == "failed" and unreadable["config"] is None
    assert unreadable["reason"].startswith(f"ConfigError: {config}: not valid YAML")
    assert (unreadable["trigger"], unreadable["attempt"]) == ("retry", 1)


def test_scheduled_run_degraded_when_llm_is_unavailable(
    setup: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config, url = setup
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    text = config.read_text().replace(
        '"schedule": {}',
        '"narration": {"client": "openai", "max_retries": 0, "timeout": 2}, "schedule": {}',
    )
    write_text(config, text)
    assert scheduled_run(str(config), url) == "degraded"
    (run,) = Db(url).runs()
    n = run["n_clusters"]
    assert run["reason"].startswith(
        f"{n} of {n} new narratives use the offline text (source offline-fallback): "
    )
    with Store(url) as store:
        assert store.run()["id"] == run["id"]  # a degraded run is the latest with personas
        assert {p["status"] for p in store.personas()} == {"new"}


def test_execute_run_cancelled_between_stages_is_recorded_interrupted(
    setup: tuple[Path, Path, str],
) -> None:
    _, config, url = setup
    cancel = Cancel()

    def progress(message: str) -> None:
        if message.startswith("prepare:"):
            cancel.request("the daemon is stopping")

    with Store(url) as store, pytest.raises(RunInterrupted, match="the daemon is stopping"):
        execute_run(load_config(config), store, progress=progress, cancel=cancel)
    db = Db(url)
    (run,) = db.runs()
    assert (run["status"], run["reason"]) == ("interrupted", "the daemon is stopping")
    assert db.count("apg_candidates", run["id"]) == 0 and db.locks() == {}
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM apg_personas")).scalar() == 0
    db.close()


def test_scheduler_example_config_unit_file_and_docs_agree() -> None:
    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "configs" / "daemon.yaml")
    trigger = triggers.build_trigger(config.schedule)
    assert trigger.get_next_fire_time(None, MON_0300 - timedelta(hours=1)) == MON_0300
    unit = (root / "configs" / "apg.service").read_text(encoding="utf-8")
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0].isalpha()
    )
    assert " daemon --config /etc/apg/daemon.yaml " in settings["ExecStart"] + " "
    assert settings["KillSignal"] == "SIGTERM" and settings["Restart"] == "on-failure"
    assert float(settings["TimeoutStopSec"]) > config.schedule.shutdown_grace + 5
    docs = (root / "docs" / "daemon.md").read_text(encoding="utf-8")
    for status in runstate.STATUSES:
        assert f"| `{status}` |" in docs, status


def test_scheduler_upgrade_stored_jobs_renames_the_old_job_function(tmp_path: Path) -> None:
    import pickle

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger

    from apg.service.scheduler import JOB_FUNC, JOBS_TABLE, upgrade_stored_jobs

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    when = datetime(2030, 1, 7, 3, tzinfo=UTC)
    sched = BackgroundScheduler(timezone=UTC)
    sched.add_jobstore(SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE), "default")
    sched.start(paused=True)
    sched.add_job(JOB_FUNC, DateTrigger(when), id="apg-retry", kwargs={"config_path": "c.yaml"})
    sched.shutdown(wait=False)
    # The row as a daemon of the previous layout stored it.
    jobs = sa.Table(JOBS_TABLE, sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        state = pickle.loads(conn.execute(sa.select(jobs.c.job_state)).scalar_one())
        state["func"] = "apg.scheduler:scheduled_run"
        conn.execute(jobs.update().values(job_state=pickle.dumps(state)))
    assert upgrade_stored_jobs(engine) == 1
    assert upgrade_stored_jobs(engine) == 0
    store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
    store.start(BackgroundScheduler(timezone=UTC), "default")
    job = store.lookup_job("apg-retry")
    assert job is not None and job.func is scheduled_run
    assert job.next_run_time == when and job.kwargs == {"config_path": "c.yaml"}


def test_scheduler_upgrade_stored_jobs_without_a_job_table_does_nothing(tmp_path: Path) -> None:

    from apg.service.scheduler import upgrade_stored_jobs

    assert upgrade_stored_jobs(sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")) == 0
