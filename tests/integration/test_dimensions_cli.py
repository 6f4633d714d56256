"""Finding 1 of the operator's day: a mapped dimension must never vanish from the files in silence.

A tracking row names a Stampli dimension, a template column reads `line.dimensions.<name>`: when the two
disagree (the map says `cost_center`, the template reads `department`) every value of that dimension is
dropped from every file. `mappings import` and `tenants set --template` refuse such a pair, naming both
sides, and store nothing; with `--allow-unmatched-dimensions` they store it and warn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.crypto import Vault
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.store.db import Ledger
from tests.conftest import pg_url_for

TENANT_ID = "11111111-2222-3333-4444-555555555555"
EXAMPLES = Path(__file__).parents[2] / "examples" / "mapping"
TRACKING_HEADER = "xero_category,xero_option,stampli_dimension,stampli_value\n"


@dataclass
class Desk:
    ledger: Ledger
    env: dict[str, str]
    folder: Path

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env)

    def tracking(self, rows: str) -> str:
        path = self.folder / "tracking.csv"
        path.write_text(TRACKING_HEADER + rows, encoding="utf-8")
        return str(path)

    def template(self, *dimension_columns: tuple[str, str]) -> str:
        """A minimal CSV template with these (column name, dimension) columns."""
        columns = "".join(f"  - {{name: {name}, source: line.dimensions.{dimension}}}\n"
                          for name, dimension in dimension_columns)
        path = self.folder / "acme.yaml"
        path.write_text("version: 1\nformat: csv\ncolumns:\n"
                        "  - {name: XeroInvoiceID, source: invoice_id, required: true}\n" + columns, encoding="utf-8")
        return str(path)

    def mapping_version(self) -> int:
        shown = self.run("mappings", "show", "--tenant", TENANT_ID)
        assert shown.exit_code == 0, shown.output
        return int(json.loads(shown.stdout)["version"])

    def template_in_use(self) -> str:
        listed = self.run("tenants", "list", "--json")
        assert listed.exit_code == 0, listed.output
        return str(json.loads(listed.stdout)[0]["template"])


@pytest.fixture
def desk(pg_schema: str, tmp_path: Path) -> Iterator[Desk]:
    url = pg_url_for(pg_schema)
    env = {"CONNECTOR_DATABASE_URL": url, "CONNECTOR_FERNET_KEYS": Vault.new_key(),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker")}
    ledger = Ledger.connect(url)
    vault = Vault([Secret(env["CONNECTOR_FERNET_KEYS"])])
    grant_id = add_grant(ledger, vault, client_id="client-1", client_secret=Secret("s"), refresh_token=Secret("r"))
    add_tenant(ledger, tenant_id=TENANT_ID, name="Acme Ltd", short_name="acme", grant_id=grant_id,
               sftp_target_id=None)
    yield Desk(ledger, env, tmp_path)
    ledger.dispose()


def test_a_tracking_map_naming_a_dimension_the_template_has_no_column_for_is_refused(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID,
                      "--tracking", desk.tracking("Department,Sales,cost_center,CC-100\nRegion,*,location,*\n"))
    assert result.exit_code == 2, result.output
    assert "'cost_center'" in result.stderr
    assert "Department" in result.stderr
    assert "department" in result.stderr  # what the template does read, so the fix is obvious
    assert "--allow-unmatched-dimensions" in result.stderr
    assert "Traceback" not in result.output
    assert desk.mapping_version() == 0  # nothing stored


def test_a_template_column_reading_a_dimension_nothing_maps_is_refused(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID,
                      "--tracking", desk.tracking("Region,*,location,*\n"))
    assert result.exit_code == 2, result.output
    assert "column 'Department'" in result.stderr
    assert "'department'" in result.stderr
    assert desk.mapping_version() == 0


def test_with_the_flag_the_import_is_stored_and_each_mismatch_is_a_warning(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID, "--allow-unmatched-dimensions",
                      "--tracking", desk.tracking("Department,*,cost_center,*\nRegion,*,location,*\n"))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr
    assert "'cost_center'" in result.stderr
    assert "mapping set 1 stored" in result.stdout
    assert desk.mapping_version() == 1


def test_a_map_that_matches_the_default_template_is_stored_without_a_word(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID,
                      "--tracking", desk.tracking("Department,*,department,*\nRegion,*,location,*\n"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_tenant_that_maps_no_dimensions_imports_its_gl_map_against_any_template(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID, "--gl", str(EXAMPLES / "gl.csv"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_the_example_maps_match_the_default_template(desk: Desk) -> None:
    result = desk.run("mappings", "import", "--tenant", TENANT_ID, "--settings", str(EXAMPLES / "tenant.yaml"),
                      "--gl", str(EXAMPLES / "gl.csv"), "--tracking", str(EXAMPLES / "tracking.csv"),
                      "--vendors", str(EXAMPLES / "vendors.csv"))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_template_without_a_column_for_a_mapped_dimension_is_refused(desk: Desk) -> None:
    stored = desk.run("mappings", "import", "--tenant", TENANT_ID,
                      "--tracking", desk.tracking("Department,*,department,*\nRegion,*,location,*\n"))
    assert stored.exit_code == 0, stored.output
    result = desk.run("tenants", "set", TENANT_ID, "--template", desk.template(("CostCentre", "cost_centre"),
                                                                              ("Location", "location")))
    assert result.exit_code == 2, result.output
    assert "'department'" in result.stderr
    assert "Department" in result.stderr  # mapped, no column
    assert "column 'CostCentre'" in result.stderr
    assert "'cost_centre'" in result.stderr  # column, nothing maps
    assert desk.template_in_use() == "default"


def test_with_the_flag_the_template_is_stored_and_each_mismatch_is_a_warning(desk: Desk) -> None:
    desk.run("mappings", "import", "--tenant", TENANT_ID,
             "--tracking", desk.tracking("Department,*,department,*\nRegion,*,location,*\n"))
    result = desk.run("tenants", "set", TENANT_ID, "--allow-unmatched-dimensions",
                      "--template", desk.template(("Location", "location")))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr
    assert "'department'" in result.stderr
    assert desk.template_in_use() == "custom"


def test_a_template_that_reads_every_mapped_dimension_is_stored(desk: Desk) -> None:
    desk.run("mappings", "import", "--tenant", TENANT_ID,
             "--tracking", desk.tracking("Department,*,department,*\nRegion,*,location,*\n"))
    result = desk.run("tenants", "set", TENANT_ID, "--template", desk.template(("Dept", "department"),
                                                                              ("Loc", "location")))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert desk.template_in_use() == "custom"
