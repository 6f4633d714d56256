"""Batch file names: tenant, UTC second and sequence; they never collide and sort in delivery order."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.domain.naming import batch_file_name


def test_names_carry_tenant_utc_second_and_sequence() -> None:
    at = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    assert batch_file_name("acme", at, 7) == "stampli_acme_20261124T093005Z_000007.csv"


def test_two_batches_in_one_second_do_not_collide_and_sort_in_order() -> None:
    at = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    names = [batch_file_name("acme", at, 9), batch_file_name("acme", at, 10),
             batch_file_name("acme", at.replace(second=6), 11)]
    assert len(set(names)) == 3
    assert sorted(names) == names


def test_unsafe_tenant_names_are_made_path_safe() -> None:
    name = batch_file_name("../Müller & Co", datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert "/" not in name
    assert " " not in name


def test_two_tenants_with_one_short_name_never_share_a_file_name() -> None:
    at = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    first = batch_file_name("acme", at, 1, "csv", "5c48a136-0d78-4ff3-8585-60875a6bae21")
    second = batch_file_name("acme", at, 1, "csv", "bb133e57-4891-48ea-b7d5-d745f0ae9a47")
    assert first == "stampli_acme-5c48a136_20261124T093005Z_000001.csv"
    assert first != second
