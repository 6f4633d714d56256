"""Mapping configuration files: every problem is named by file, row and column, and reported at once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from connector.config.loader import MappingSetData, load_mapping_set
from connector.domain.rules import Policy, ReasonClass, UnmappedTracking
from connector.errors import ConfigurationError

GOOD_SETTINGS = """\
eligible_statuses: [AUTHORISED, SUBMITTED]
po_fields: [InvoiceNumber, LineDescriptions]
amount_tolerance: "1.50"
amount_tolerance_percent: 2
require_tax_number: true
unmapped_tracking: pass_through
policies:
  no_po: deliver_flagged
  vendor: exclude
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_files_become_typed_rules_and_maps(tmp_path: Path) -> None:
    data = load_mapping_set(
        write(tmp_path, "tenant.yaml", GOOD_SETTINGS),
        write(tmp_path, "gl.csv", "xero_account_code,stampli_gl_code\n400,6000-OFFICE\nSW-SAAS,6100\n"),
        write(tmp_path, "tracking.csv", "xero_category,xero_option,stampli_dimension,stampli_value\n"
                                        "Department,Sales,cost_center,CC-10\nRegion,*,location,*\n"),
        write(tmp_path, "vendors.csv", "xero_contact_id,stampli_vendor_code\n"
                                       "84978cfb-5a7c-4f1c-a29a-075af90dfef0,V-1001\n"),
    )
    rules, maps = data.rules(), data.maps()
    assert rules.eligible_statuses == ("AUTHORISED", "SUBMITTED")
    assert rules.amount_tolerance == Decimal("1.50")
    assert rules.unmapped_tracking is UnmappedTracking.PASS_THROUGH
    assert rules.policy(ReasonClass.NO_PO) is Policy.DELIVER_FLAGGED
    assert rules.policy(ReasonClass.UNMAPPED_GL) is Policy.HOLD
    assert maps.gl == {"400": "6000-OFFICE", "SW-SAAS": "6100"}
    assert maps.tracking[("Region", "*")] == ("location", "*")
    assert maps.vendors == {"84978cfb-5a7c-4f1c-a29a-075af90dfef0": "V-1001"}
    assert MappingSetData.from_json(data.as_json()) == data


def test_every_problem_names_its_file_row_and_column_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_mapping_set(
            write(tmp_path, "tenant.yaml", "eligible_statuses: [APPROVED]\npolicies: {no_po: shrug}\ncolour: red\n"),
            write(tmp_path, "gl.csv", "xero_account_code,stampli_gl_code\n400,\n400,6000\n400,6001\n"),
            write(tmp_path, "tracking.csv", "xero_category,xero_option\nDepartment,Sales\n"),
            write(tmp_path, "vendors.csv", "xero_contact_id,stampli_vendor_code\nnot-a-uuid,V-1\n"),
        )
    problems = error.value.problems
    expected = [
        "tenant.yaml: eligible_statuses.0: Must be one of",
        "tenant.yaml: policies.no_po.value: Must be one of",
        "tenant.yaml: colour: Unknown field.",
        "gl.csv row 2 column 'stampli_gl_code'",
        "gl.csv row 4: 400 is already mapped on row 3",
        "tracking.csv: header must be",
        "vendors.csv row 2 column 'xero_contact_id': Not a valid UUID.",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)


def test_files_not_given_keep_the_set_in_force(tmp_path: Path) -> None:
    base = MappingSetData(settings={"amount_tolerance": "0.10"}, gl={"400": "A"}, tracking=[], vendors={"x": "V"})
    data = load_mapping_set(gl=write(tmp_path, "gl.csv", "xero_account_code,stampli_gl_code\n410,B\n"), base=base)
    assert data.gl == {"410": "B"}
    assert data.settings == base.settings
    assert data.vendors == base.vendors


def test_a_bom_from_a_spreadsheet_is_fine(tmp_path: Path) -> None:
    gl = tmp_path / "gl.csv"
    gl.write_bytes("\ufeffxero_account_code,stampli_gl_code\r\n400,6000\r\n".encode())
    assert load_mapping_set(gl=gl).gl == {"400": "6000"}


def test_the_example_files_in_the_readme_load() -> None:
    examples = Path(__file__).parents[2] / "examples" / "mapping"
    data = load_mapping_set(examples / "tenant.yaml", examples / "gl.csv", examples / "tracking.csv",
                            examples / "vendors.csv")
    assert data.rules().eligible_statuses == ("AUTHORISED",)
    assert data.maps().gl["SW-SAAS"] == "6300-SOFTWARE"


def test_the_loopholes_are_closed(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_mapping_set(
            write(tmp_path, "tenant.yaml", "policies: {no_po: hold}\npolicies: {no_po: deliver_flagged}\n"),
            write(tmp_path, "gl.csv", 'xero_account_code,stampli_gl_code\n\n400,6000,01\n"4\n10",6100\n'),
        )
    problems = error.value.problems
    assert any("tenant.yaml" in p and "appears twice" in p for p in problems), problems
    assert any("gl.csv row 3: more fields than the header" in p for p in problems), problems  # file line 3
    assert any("gl.csv row 5 column 'xero_account_code': must not contain control characters" in p
               for p in problems), problems
    with pytest.raises(ConfigurationError, match="eligible_statuses"):
        load_mapping_set(write(tmp_path, "t2.yaml", "eligible_statuses: [VOIDED]\n"))
    with pytest.raises(ConfigurationError, match="billable_po_statuses"):
        load_mapping_set(write(tmp_path, "t3.yaml", "billable_po_statuses: []\n"))
