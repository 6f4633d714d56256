"""Finding 12 of the operator's day, the pure parts: every secret-bearing part of a URL is masked in what
the processes print (the workers' start-up log shows `Settings.describe()`), reconcile has its own beat
entry, daily by default, and Flower's Celery app needs the broker URL and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from beat.schedule import beat_schedule
from connector.crypto import Vault
from connector.settings import load_settings, mask_url_password

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("url", "secret"), [
    ("postgresql://app:hunter2@db:5432/connector", "hunter2"),
    ("postgresql://app@db:5432/connector?password=hunter2&sslmode=require", "hunter2"),
    ("postgresql://app@db/connector?sslmode=require&PASSWORD=hunter2", "hunter2"),
    ("postgresql://app@db/connector?sslpassword=k3y-pass", "k3y-pass"),
    ("redis://:r3dis-pw@redis:6379/0", "r3dis-pw"),
    ("rediss://default:r3dis-pw@redis:6380/0?ssl_cert_reqs=required", "r3dis-pw"),
    ("sqla+postgresql://app@db/x?token=t0ken-value", "t0ken-value"),
])
def test_every_secret_bearing_part_of_a_url_is_masked(url: str, secret: str) -> None:
    masked = mask_url_password(url)
    assert secret not in masked
    assert "***" in masked


def test_the_parts_that_are_not_secret_stay_readable() -> None:
    assert mask_url_password("postgresql://app@db:5432/connector?password=x&sslmode=require") == \
        "postgresql://app@db:5432/connector?password=***&sslmode=require"
    assert mask_url_password("redis://redis:6379/0") == "redis://redis:6379/0"
    assert mask_url_password("not a url") == "not a url"


def test_the_workers_start_up_view_of_the_settings_shows_no_password_from_any_url() -> None:
    settings = load_settings({"CONNECTOR_FERNET_KEYS": Vault.new_key(),
                              "CONNECTOR_DATABASE_URL": "postgresql://app@db/connector?password=hunter2",
                              "CONNECTOR_BROKER_URL": "redis://:r3dis-pw@redis:6379/0"})
    shown = str(settings.describe())
    assert "hunter2" not in shown
    assert "r3dis-pw" not in shown
    assert settings.fernet_keys[0].reveal() not in shown


def test_reconcile_runs_from_beat_daily_by_default_and_the_interval_is_a_setting() -> None:
    key = Vault.new_key()
    entry = beat_schedule(load_settings({"CONNECTOR_FERNET_KEYS": key}))["reconcile"]
    assert entry["task"] == "connector.reconcile_tenants"
    assert entry["schedule"] == timedelta(days=1)
    assert entry["options"]["queue"] == "poll"
    hourly = load_settings({"CONNECTOR_FERNET_KEYS": key, "CONNECTOR_RECONCILE_INTERVAL_SECONDS": "3600"})
    assert beat_schedule(hourly)["reconcile"]["schedule"] == timedelta(hours=1)


def test_flower_s_celery_app_starts_with_the_broker_url_alone() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
    env["CONNECTOR_BROKER_URL"] = "redis://:r3dis-pw@127.0.0.1:6379/0"
    run = subprocess.run([sys.executable, "-c", "from workers.monitor import app; "
                          "print(sorted(q.name for q in app.conf.task_queues))"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "['batch', 'map', 'poll', 'sftp']"
