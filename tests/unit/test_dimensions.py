"""Which disagreements between a tracking map and a template's dimension columns are named (pure)."""

from __future__ import annotations

from connector.domain.dimensions import Mismatch, dimension_mismatches, dimensions_fed


def test_a_dimension_the_map_gives_and_no_column_reads_is_named_with_its_categories() -> None:
    fed = dimensions_fed([("Department", "Sales", "cost_center"), ("Region", "*", "location")])
    [problem] = dimension_mismatches({"location": ["Location"]}, fed, check_unfed_columns=True)
    assert (problem.kind, problem.dimension, problem.fed_by) == (Mismatch.MAPPED_NOT_IN_TEMPLATE, "cost_center",
                                                                 ("Department",))


def test_a_column_no_map_row_feeds_is_named_only_when_the_tenant_maps_dimensions_at_all() -> None:
    columns = {"department": ["Department"], "location": ["Location"]}
    fed = dimensions_fed([("Region", "*", "location")])
    [problem] = dimension_mismatches(columns, fed, check_unfed_columns=True)
    assert (problem.kind, problem.columns) == (Mismatch.TEMPLATE_READS_UNMAPPED, ("Department",))
    assert dimension_mismatches(columns, {}, check_unfed_columns=False) == []


def test_pass_through_feeds_a_dimension_named_after_each_category_the_map_does_not_wholly_cover() -> None:
    fed = dimensions_fed([("Department", "Sales", "department"), ("Region", "*", "location")],
                         pass_through_categories=["Department", "Region", "Project"])
    assert fed == {"department": {"Department"}, "location": {"Region"}, "Department": {"Department"},
                   "Project": {"Project"}}
