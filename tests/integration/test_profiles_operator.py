"""Mapping profiles as an operator meets them day to day, through the `connector` command on the real
PostgreSQL: two imports at once keep each other's parts, a tenant drops one of its own entries to follow
the profile's again, a profile is renamed or removed, a draft is made for a profile, and `status` says
whether an unmapped code belongs in the profile's map or the tenant's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_profiles_cli import TRACKING_HEADER, gl, listed, ok, shown, write
from tests.support.operator import Operator, many_tenants

CONTACT = "aaaaaaaa-0000-0000-0000-000000000001"
LOOSE = "--allow-unmatched-dimensions"  # these maps feed a dimension the default template has no column for


def import_meanwhile(monkeypatch: pytest.MonkeyPatch, name: str, operator: Operator, *args: str) -> None:
    """Another operator's import (`args`) lands after this import read the map in force and before it
    stored its own: the moment two imports at once race for."""
    import connector.services.mappings as service

    original = getattr(service, name)
    done = []

    def racing(*a: Any, **kw: Any) -> Any:
        if not done:
            done.append(True)
            ok(operator, *args)
        return original(*a, **kw)

    monkeypatch.setattr(service, name, racing)


def test_two_profile_imports_at_once_keep_each_other_s_parts(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(operator, "profiles", "create", "uk")
    tracking = write(tmp_path, "t.csv", TRACKING_HEADER + "Region,North,department,N\n")
    import_meanwhile(monkeypatch, "import_profile_mapping_set", operator,
                     "mappings", "import", "--profile", "uk", "--tracking", tracking, "--allow-unmatched-dimensions")
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "gl.csv", {"400": "P-400"}),
       "--allow-unmatched-dimensions")
    stored = json.loads(ok(operator, "mappings", "show", "--profile", "uk"))
    assert stored["version"] == 2
    assert stored["gl"] == {"400": "P-400"}
    assert [row["xero_option"] for row in stored["tracking"]] == ["North"]  # the other import's part kept


def test_two_tenant_imports_at_once_keep_each_other_s_parts(
    operator: Operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    [tenant] = many_tenants(operator, 1)
    vendors = write(tmp_path, "v.csv", f"xero_contact_id,stampli_vendor_code\n{CONTACT},V-1\n")
    import_meanwhile(monkeypatch, "import_tenant_mapping_set", operator,
                     "mappings", "import", "--tenant", tenant, "--vendors", vendors)
    ok(operator, "mappings", "import", "--tenant", tenant, "--gl", gl(tmp_path, "gl.csv", {"400": "A-400"}))
    own = json.loads(ok(operator, "mappings", "show", "--tenant", tenant, "--own"))
    assert own["version"] == 2
    assert (own["gl"], own["vendors"]) == ({"400": "A-400"}, {CONTACT: "V-1"})


def test_a_tenant_drops_its_own_entries_and_follows_the_profile_s_again(operator: Operator, tmp_path: Path) -> None:
    [tenant] = many_tenants(operator, 1)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", tenant, "--profile", "uk")
    ok(operator, "mappings", "import", "--profile", "uk", LOOSE,
       "--gl", gl(tmp_path, "p.csv", {"400": "P-400", "500": "P-500"}),
       "--tracking", write(tmp_path, "pt.csv", TRACKING_HEADER + "Region,North,department,P-N\n"))
    ok(operator, "mappings", "import", "--tenant", tenant, LOOSE,
       "--gl", gl(tmp_path, "a.csv", {"500": "A-500", "600": "A-600"}),
       "--tracking", write(tmp_path, "at.csv", TRACKING_HEADER + "Region,North,department,A-N\n"))
    dropped = json.loads(ok(operator, "mappings", "unset", "--tenant", tenant, "--gl", "500",
                            "--tracking", "Region", "North", "--json", LOOSE))
    assert (dropped["tenant_id"], dropped["version"], dropped["dropped"]) == (
        tenant, 2, {"gl": ["500"], "tracking": [["Region", "North"]], "vendors": [], "settings": []})
    in_force = shown(operator, tenant)
    assert in_force["gl"] == {"400": "P-400", "500": "P-500", "600": "A-600"}  # 500 is the profile's again
    assert [row["stampli_value"] for row in in_force["tracking"]] == ["P-N"]
    assert json.loads(ok(operator, "mappings", "show", "--tenant", tenant, "--own"))["gl"] == {"600": "A-600"}
    # A profile's entry is dropped the same way, for every tenant on it.
    ok(operator, "mappings", "unset", "--profile", "uk", "--gl", "400", LOOSE)
    assert shown(operator, tenant)["gl"] == {"500": "P-500", "600": "A-600"}
    assert json.loads(ok(operator, "mappings", "show", "--profile", "uk"))["version"] == 2


def test_dropping_an_entry_the_map_does_not_have_is_refused_with_exit_2(operator: Operator, tmp_path: Path) -> None:
    [tenant] = many_tenants(operator, 1)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", tenant, "--profile", "uk")
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p.csv", {"400": "P-400"}))
    ok(operator, "mappings", "import", "--tenant", tenant, "--gl", gl(tmp_path, "a.csv", {"600": "A-600"}))
    refused = operator.run("mappings", "unset", "--tenant", tenant, "--gl", "400", "--gl", "600")
    assert refused.exit_code == 2, refused.output
    assert f"tenant {tenant}: its own map has no GL code 400 (it is its profile's: " in refused.stderr
    assert json.loads(ok(operator, "mappings", "show", "--tenant", tenant, "--own"))["version"] == 1  # nothing stored
    for args in (["--tenant", "nope", "--gl", "600"], ["--profile", "nope", "--gl", "600"], ["--tenant", tenant]):
        assert operator.run("mappings", "unset", *args).exit_code == 2, args


def test_a_profile_is_renamed_and_its_tenants_stay_on_it(operator: Operator, tmp_path: Path) -> None:
    [tenant] = many_tenants(operator, 1)
    ok(operator, "profiles", "create", "uk", "--interval", "1200")
    ok(operator, "profiles", "create", "ie")
    ok(operator, "tenants", "set", tenant, "--profile", "uk")
    ok(operator, "profiles", "rename", "uk", "gb")
    assert listed(operator)[tenant]["profile"] == "gb"
    assert operator.run("profiles", "rename", "gb", "ie").exit_code == 2  # taken
    missing = operator.run("profiles", "rename", "uk", "anything")
    assert missing.exit_code == 2
    assert "no such profile: uk" in missing.stderr


def test_a_profile_with_tenants_is_removed_only_when_told_to_detach_them(operator: Operator, tmp_path: Path) -> None:
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk", "--interval", "1200")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p.csv", {"400": "P-400"}))
    refused = operator.run("profiles", "remove", "uk")
    assert refused.exit_code == 2, refused.output
    assert "2 tenants are on profile uk" in refused.stderr
    assert "--detach" in refused.stderr
    assert listed(operator)[first]["profile"] == "uk"
    removed = json.loads(ok(operator, "profiles", "remove", "uk", "--detach", "--json"))
    assert (removed["profile"], removed["detached"]) == ("uk", [first, second])
    rows = listed(operator)
    # detached, as `tenants set --no-profile`: its own map only, and the cadence it had
    assert (rows[first]["profile"], rows[first]["poll_interval_seconds"]) == (None, 1200)
    assert shown(operator, first)["gl"] == {}
    assert json.loads(ok(operator, "profiles", "list", "--json")) == []
    ok(operator, "profiles", "create", "uk")  # the name is free again; no old version comes back
    assert json.loads(ok(operator, "mappings", "show", "--profile", "uk"))["version"] == 0
    ok(operator, "profiles", "remove", "uk")  # no tenant on it: removed without --detach


def test_status_says_an_unmapped_code_belongs_in_the_profile_s_map(operator: Operator, tmp_path: Path) -> None:
    from tests.integration.test_profiles_cli import held

    on_profile, alone = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", on_profile, "--profile", "uk")
    with operator.ledger.transaction() as session:
        held(session, on_profile, "bill-1", "unmapped_gl")
        held(session, alone, "bill-2", "unmapped_gl")
    with operator.ledger.transaction() as session:  # the reason as mapping writes it: the account it names
        from sqlalchemy import update

        from connector.store.models import Bill
        session.execute(update(Bill).values(reasons=[{"code": "unmapped_gl", "account": "999"}]))
    text = ok(operator, "status")
    assert (f"UNMAPPED account 999 ({on_profile}): 1 bills; add it to the GL map of profile uk "
            "(connector mappings import --profile uk)") in text
    assert f"UNMAPPED account 999 ({alone}): 1 bills; add it to the GL map\n" in text
    report = json.loads(ok(operator, "status", "--json"))
    assert {row["tenant_id"]: row["profile"] for row in report["unmapped_accounts"]} == {on_profile: "uk", alone: None}
    # masked on purpose: status says so, and how to lift it, instead of asking to map it
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p.csv", {"999": "P-999"}))
    ok(operator, "mappings", "mask", "--tenant", on_profile, "--gl", "999")
    assert (f"UNMAPPED account 999 ({on_profile}): 1 bills; masked for this tenant (lift it: connector mappings "
            f"unset --tenant {on_profile} --gl 999)") in ok(operator, "status")


def test_a_draft_for_a_profile_lists_the_codes_of_every_tenant_on_it_filled_from_the_profile_s_map(
    operator: Operator, tmp_path: Path,
) -> None:
    from connector.store.models import AccountRow, TrackingCategoryRow

    first, second, elsewhere = many_tenants(operator, 3)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    with operator.ledger.transaction() as session:
        for tenant, codes in ((first, ("400", "500")), (second, ("500", "600")), (elsewhere, ("700",))):
            for code in codes:
                session.add(AccountRow(tenant_id=tenant, account_id=f"acc-{code}", code=code, name=f"Account {code}",
                                       status="ACTIVE", version=1))
            session.add(TrackingCategoryRow(tenant_id=tenant, category_id="cat-1", name="Region", status="ACTIVE",
                                            options=[{"name": "North", "status": "ACTIVE"}]))
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p.csv", {"400": "P-400"}))
    ok(operator, "mappings", "import", "--tenant", first, "--gl", gl(tmp_path, "a.csv", {"500": "A-500"}))
    out = tmp_path / "draft"
    ok(operator, "mappings", "draft", "--profile", "uk", "--out", str(out))
    rows = (out / "gl.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["400", "P-400"], ["500", ""], ["600", ""]]  # no override
    assert (out / "tracking.csv").read_text(encoding="utf-8").count("Region,North") == 1
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", str(out / "gl.csv"))  # imports as it is


def test_a_tenant_s_draft_warns_that_importing_it_would_override_its_profile(
    operator: Operator, tmp_path: Path,
) -> None:
    from connector.store.models import AccountRow

    [tenant] = many_tenants(operator, 1)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", tenant, "--profile", "uk")
    with operator.ledger.transaction() as session:
        session.add(AccountRow(tenant_id=tenant, account_id="acc-400", code="400", name="Sales", status="ACTIVE",
                               version=1))
    drafted = operator.run("mappings", "draft", "--tenant", tenant, "--out", str(tmp_path / "d"))
    assert drafted.exit_code == 0, drafted.output
    assert f"tenant {tenant} is on profile uk" in drafted.stderr
    assert "--profile uk" in drafted.stderr


def test_every_changing_profile_command_answers_in_json(operator: Operator, tmp_path: Path) -> None:
    [tenant] = many_tenants(operator, 1)
    created = json.loads(ok(operator, "profiles", "create", "uk", "--interval", "1200", "--json"))
    assert created == {"profile": "uk", "created": True, "poll_interval_seconds": 1200, "template": "default"}
    ok(operator, "tenants", "set", tenant, "--profile", "uk")
    changed = json.loads(ok(operator, "profiles", "set", "uk", "--interval", "1800", "--json"))
    assert (changed["profile"], changed["poll_interval_seconds"], changed["tenants_following"]) == ("uk", 1800, 1)
    assert changed["template_changed"] is False
    renamed = json.loads(ok(operator, "profiles", "rename", "uk", "gb", "--json"))
    assert renamed == {"profile": "gb", "was": "uk"}


def test_a_tenant_masks_a_profile_entry_and_unset_lifts_the_mask(operator: Operator, tmp_path: Path) -> None:
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    ok(operator, "mappings", "import", "--profile", "uk", LOOSE,
       "--gl", gl(tmp_path, "p.csv", {"400": "P-400", "500": "P-500"}),
       "--tracking", write(tmp_path, "pt.csv", TRACKING_HEADER + "Region,North,department,P-N\n"))
    masked = json.loads(ok(operator, "mappings", "mask", "--tenant", first, "--gl", "400",
                           "--tracking", "Region", "North", "--json", LOOSE))
    assert (masked["version"], masked["masked"]["gl"]) == (1, ["400"])
    assert shown(operator, first)["gl"] == {"500": "P-500"}  # 400 is not mapped for this tenant: its bills hold
    assert shown(operator, first)["tracking"] == []
    assert shown(operator, second)["gl"] == {"400": "P-400", "500": "P-500"}  # the profile is unchanged
    [listed_first] = [t for t in json.loads(ok(operator, "profiles", "show", "uk", "--json"))["tenant_list"]
                      if t["id"] == first]
    assert listed_first["overrides"]["masked"] == {"gl": ["400"], "tracking": [["Region", "North"]], "vendors": []}
    own = json.loads(ok(operator, "mappings", "show", "--tenant", first, "--own"))
    assert (own["gl"], own["masked"]["gl"]) == ({}, ["400"])  # a mask, in its own set
    # A new version of the profile does not lift the mask; `unset` does.
    ok(operator, "mappings", "import", "--profile", "uk", LOOSE, "--gl", gl(tmp_path, "p2.csv", {"400": "P-401"}))
    assert shown(operator, first)["gl"] == {}
    ok(operator, "mappings", "unset", "--tenant", first, "--gl", "400")
    assert shown(operator, first)["gl"] == {"400": "P-401"}
    # Masking what the profile does not map, or for a tenant on no profile, is refused (exit 2).
    refused = operator.run("mappings", "mask", "--tenant", first, "--gl", "999")
    assert refused.exit_code == 2, refused.output
    assert f"tenant {first}: its profile uk maps no GL code 999" in refused.stderr
    ok(operator, "tenants", "set", second, "--no-profile")
    alone = operator.run("mappings", "mask", "--tenant", second, "--gl", "400")
    assert alone.exit_code == 2, alone.output
    assert "is on no profile" in alone.stderr


def test_a_tenant_put_on_a_profile_removed_meanwhile_is_refused_with_exit_2(
    operator: Operator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    [tenant] = many_tenants(operator, 1)
    ok(operator, "profiles", "create", "uk")
    import_meanwhile(monkeypatch, "tenant_change_problems", operator, "profiles", "remove", "uk")
    refused = operator.run("tenants", "set", tenant, "--profile", "uk")
    assert refused.exit_code == 2, refused.output
    assert "no such profile: uk" in refused.stderr
    assert listed(operator)[tenant]["profile"] is None


def statements_of(operator: Operator, *args: str) -> int:
    """How many SQL statements the command sent to the ledger."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        ok(operator, *args)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    return len(seen)


def test_a_change_to_many_tenants_own_maps_costs_the_same_statements_for_20_tenants_or_40(
    operator: Operator, tmp_path: Path,
) -> None:
    ok(operator, "profiles", "create", "uk")
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p.csv", {"400": "P-400"}))
    costs = []
    every = many_tenants(operator, 60)
    for ids in (every[:20], every[20:]):
        ok(operator, "tenants", "set", *ids, "--profile", "uk")
        selection = [part for tenant in ids for part in ("--tenant", tenant)]
        costs.append((statements_of(operator, "mappings", "mask", *selection, "--gl", "400"),
                      statements_of(operator, "mappings", "unset", *selection, "--gl", "400"),
                      statements_of(operator, "mappings", "import", *selection,
                                    "--gl", gl(tmp_path, "o.csv", {"600": "A-600"}))))
    assert costs[0] == costs[1], costs
