"""Stampli import files: a template as data, and byte-exact CSV or XML rendered from bill records.

Stampli takes bills only as files in its SFTP import folder, in a template each customer's onboarding
configures, and publishes none; the defaults in `templates/` are ours until the customer's replaces them.
"""

from __future__ import annotations

from connector.stampli.render import Rendered, render
from connector.stampli.sidecar import SUFFIX as SIDECAR_SUFFIX
from connector.stampli.sidecar import checksum_line, checksum_line_of
from connector.stampli.template import (
    Column,
    Template,
    TemplateError,
    XmlNames,
    default_master_template,
    default_template,
    load_template,
    parse_template,
    template_from_data,
)
from connector.stampli.values import FORMULA_STARTS, BillCells, check, evaluate

__all__ = [
    "FORMULA_STARTS",
    "SIDECAR_SUFFIX",
    "BillCells",
    "Column",
    "Rendered",
    "Template",
    "TemplateError",
    "XmlNames",
    "check",
    "checksum_line",
    "checksum_line_of",
    "default_master_template",
    "default_template",
    "evaluate",
    "load_template",
    "parse_template",
    "render",
    "template_from_data",
]
