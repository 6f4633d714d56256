"""Do a tenant's tracking map and its Stampli template name the same dimensions? Pure.

Mapping writes each tracking option under the Stampli dimension its map row names; a template column
reads `line.dimensions.<name>`. Nothing joins the two but the name, so a map that says `cost_center`
beside a template that reads `department` drops every value of that dimension from every file, in
silence. This module names each such disagreement, so the change that would cause it can be refused.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Mismatch(enum.Enum):
    MAPPED_NOT_IN_TEMPLATE = "mapped_not_in_template"    # values are produced and dropped
    TEMPLATE_READS_UNMAPPED = "template_reads_unmapped"  # a column that is always empty


@dataclass(frozen=True)
class DimensionMismatch:
    kind: Mismatch
    dimension: str
    fed_by: tuple[str, ...]       # the Xero tracking categories whose options go under this dimension
    columns: tuple[str, ...]      # the template columns that read this dimension

    def text(self, template_name: str, template_dimensions: Iterable[str]) -> str:
        if self.kind is Mismatch.MAPPED_NOT_IN_TEMPLATE:
            read = ", ".join(repr(d) for d in sorted(template_dimensions)) or "none"
            return (f"the tracking map puts {' and '.join(self.fed_by)} under dimension {self.dimension!r}, but "
                    f"template {template_name!r} has no column reading line.dimensions.{self.dimension} "
                    f"(its dimension columns read: {read}): those values would be missing from every file")
        return (f"template {template_name!r} column {self.columns[0]!r} reads dimension {self.dimension!r}, which "
                f"no tracking map row gives: the column would always be empty")


def dimension_mismatches(template_columns: Mapping[str, Iterable[str]], fed: Mapping[str, Iterable[str]], *,
                         check_unfed_columns: bool) -> list[DimensionMismatch]:
    """Every disagreement between what the template reads (`template_columns`: dimension → the columns
    reading it) and what mapping writes (`fed`: dimension → the tracking categories feeding it).

    `check_unfed_columns` is False for a tenant that maps no dimension at all: its dimension columns stay
    empty on purpose (many Xero organisations use no tracking), so only a map can make them suspect."""
    problems = [DimensionMismatch(Mismatch.MAPPED_NOT_IN_TEMPLATE, dimension, tuple(sorted(set(categories))), ())
                for dimension, categories in sorted(fed.items()) if dimension not in template_columns]
    if check_unfed_columns:
        problems += [DimensionMismatch(Mismatch.TEMPLATE_READS_UNMAPPED, dimension, (), tuple(columns))
                     for dimension, columns in sorted(template_columns.items()) if dimension not in fed]
    return problems


def dimensions_fed(tracking_rows: Iterable[tuple[str, str, str]], *, pass_through_categories: Iterable[str] = ()
                   ) -> dict[str, set[str]]:
    """Dimension → the Xero categories feeding it, from (category, option, dimension) map rows; with the
    tenant's `unmapped_tracking: pass_through`, a category the map does not wholly cover (no `*` row)
    also goes out under its own name."""
    fed: dict[str, set[str]] = {}
    wholly_mapped = set()
    for category, option, dimension in tracking_rows:
        fed.setdefault(dimension, set()).add(category)
        if option == "*":
            wholly_mapped.add(category)
    for category in pass_through_categories:
        if category not in wholly_mapped:
            fed.setdefault(category, set()).add(category)
    return fed
