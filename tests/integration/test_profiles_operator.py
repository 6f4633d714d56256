"""Mapping profiles as an operator meets them day to day, through the `connector` command on the real
PostgreSQL: two imports at once keep each other's parts, a tenant drops one of its own entries to follow
the profile's again, a profile is renamed or removed, a draft is made for a profile, and `status` says
whether an unmapped code belongs in the profile's map or the tenant's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_profiles_cli import TRACKING_HEADER, gl, ok, write
from tests.support.operator import Operator, many_tenants


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
    vendors = write(tmp_path, "v.csv", "xero_contact_id,stampli_vendor_code\naaaaaaaa-0000-0000-0000-000000000001,V-1\n")
    import_meanwhile(monkeypatch, "import_tenant_mapping_set", operator,
                     "mappings", "import", "--tenant", tenant, "--vendors", vendors)
    ok(operator, "mappings", "import", "--tenant", tenant, "--gl", gl(tmp_path, "gl.csv", {"400": "A-400"}))
    own = json.loads(ok(operator, "mappings", "show", "--tenant", tenant, "--own"))
    assert own["version"] == 2
    assert (own["gl"], own["vendors"]) == ({"400": "A-400"}, {"aaaaaaaa-0000-0000-0000-000000000001": "V-1"})
