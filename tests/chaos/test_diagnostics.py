"""A failed chaos run explains itself: what the ledger says about the tenant's polls (a parked tenant and
why, a token refresh lease a killed worker left, the watermarks, the poll events) and the poll workers'
log lines about polls are printed with the verdict."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from connector.secret import Secret
from connector.services.context import Services
from connector.sftp import SftpTarget
from connector.store.models import Tenant, XeroGrant, utcnow
from connector.store.polls import park_polls
from sandbox.xero import XeroSandbox
from tests.support.chaos import poll_log_lines, poll_story
from tests.support.pipeline import onboard

NO_SFTP = SftpTarget(host="127.0.0.1", port=22, username="x", import_dir="/x", host_key="", password=Secret("p"))


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=5, tenants=1, bills=3) as running:
        yield running


def test_the_poll_story_names_the_parking_reason_the_unfinished_runs_and_a_dead_refreshers_lease(
    services: Services, sandbox: XeroSandbox,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    refresher_until = utcnow() + timedelta(seconds=60)
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        tenant.poll_runs = 3
        session.get_one(XeroGrant, tenant.grant_id).refreshing_until = refresher_until
        park_polls(session, tenant_id, "the poll of tenant T died 3 times in a row without finishing", utcnow())
    story = poll_story(services, tenant_id)
    assert "unfinished runs 3" in story
    assert "parked: the poll of tenant T died 3 times in a row" in story
    assert f"refresh lease until {refresher_until}" in story
    assert "poll_parked" in story


def test_the_poll_workers_last_words_keep_only_lines_about_polls_the_newest_last() -> None:
    first = "[x] WARNING tenant A: this poll outlived its lease and another took over; it stops\n[x] INFO mapped B"
    second = "[y] ERROR the poll of tenant A died 3 times in a row; its polls are parked\n[y] INFO file sent"
    assert poll_log_lines([first, second]) == [first.splitlines()[0], second.splitlines()[0]]
    assert poll_log_lines([first, second], limit=1) == [second.splitlines()[0]]
