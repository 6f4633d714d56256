"""Loading a tenant's mapping set from files; every problem names the file, the row and the column.

All problems are collected and raised together as one ConfigurationError, so an operator fixes a file
once rather than once per error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError

from connector import strict_yaml
from connector.config.schemas import GlRowSchema, TenantSettingsSchema, TrackingRowSchema, VendorRowSchema
from connector.domain.rules import Maps, Policy, ReasonClass, TenantRules, UnmappedTracking
from connector.errors import ConfigurationError


@dataclass(frozen=True)
class Entries:
    """Entries of a mapping set, named by their keys: GL codes, tracking (category, option) rows, vendor
    contact ids, setting names (what `mappings unset` drops)."""

    gl: tuple[str, ...] = ()
    tracking: tuple[tuple[str, str], ...] = ()
    vendors: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.gl or self.tracking or self.vendors or self.settings)

    def as_json(self) -> dict[str, list[Any]]:
        return {"gl": list(self.gl), "tracking": [list(row) for row in self.tracking], "vendors": list(self.vendors),
                "settings": list(self.settings)}


@dataclass(frozen=True)
class MappingSetData:
    """A validated mapping set, JSON-safe (what the ledger stores, versioned)."""

    settings: dict[str, Any] = field(default_factory=dict)
    gl: dict[str, str] = field(default_factory=dict)
    tracking: list[dict[str, str]] = field(default_factory=list)
    vendors: dict[str, str] = field(default_factory=dict)
    # A tenant's masks: entries of its profile's map that are not in force for it (a GL code, a tracking
    # row or a vendor left unmapped, as if the profile did not map it). Its own entry for the same key wins.
    masked: Entries = field(default_factory=Entries)

    def rules(self) -> TenantRules:
        return rules_from(self.settings)

    def maps(self) -> Maps:
        return Maps(
            gl=dict(self.gl),
            tracking={(r["xero_category"], r["xero_option"]): (r["stampli_dimension"], r["stampli_value"])
                      for r in self.tracking},
            vendors=dict(self.vendors),
        )

    def overlaid_on(self, shared: MappingSetData) -> MappingSetData:
        """This (a tenant's own) set over a profile's `shared` one, entry by entry: each GL code, each
        (category, option) tracking row, each vendor and each setting the tenant maps is its own; every
        other comes from the profile. So a thousand tenants share one chart of accounts and one of them
        re-maps a code without copying the rest (and keeps every later change of the profile's)."""
        own_rows = {(r["xero_category"], r["xero_option"]) for r in self.tracking} | set(self.masked.tracking)
        shared = shared.without(self.masked)
        settings = {**shared.settings, **self.settings}
        if isinstance(shared.settings.get("policies"), dict) and isinstance(self.settings.get("policies"), dict):
            # policies class by class: a tenant's policy for one class keeps the profile's for the others
            settings["policies"] = {**shared.settings["policies"], **self.settings["policies"]}
        return MappingSetData(
            settings=settings,
            gl={**shared.gl, **self.gl},
            tracking=[r for r in shared.tracking if (r["xero_category"], r["xero_option"]) not in own_rows]
            + list(self.tracking),
            vendors={**shared.vendors, **self.vendors},
        )

    def without(self, entries: Entries) -> MappingSetData:
        """This set without these entries, values and masks alike (a tenant's own: the profile's entry is in
        force for them again)."""
        rows = set(entries.tracking)
        return MappingSetData(
            settings={k: v for k, v in self.settings.items() if k not in entries.settings},
            gl={k: v for k, v in self.gl.items() if k not in entries.gl},
            tracking=[r for r in self.tracking if (r["xero_category"], r["xero_option"]) not in rows],
            vendors={k: v for k, v in self.vendors.items() if k not in entries.vendors},
            masked=Entries(gl=tuple(k for k in self.masked.gl if k not in entries.gl),
                           tracking=tuple(r for r in self.masked.tracking if r not in rows),
                           vendors=tuple(k for k in self.masked.vendors if k not in entries.vendors)))

    def masking(self, entries: Entries) -> MappingSetData:
        """This (a tenant's own) set with these entries of its profile's masked: not in force for the tenant,
        its own value for them dropped too."""
        left = self.without(entries)
        return replace(left, masked=Entries(gl=left.masked.gl + entries.gl,
                                            tracking=left.masked.tracking + entries.tracking,
                                            vendors=left.masked.vendors + entries.vendors))

    def with_masks_of(self, base: MappingSetData) -> MappingSetData:
        """This set keeping `base`'s masks (an import replaces parts of a tenant's set, never its masks),
        except where this set now maps the entry itself."""
        rows = {(r["xero_category"], r["xero_option"]) for r in self.tracking}
        return replace(self, masked=Entries(gl=tuple(k for k in base.masked.gl if k not in self.gl),
                                            tracking=tuple(r for r in base.masked.tracking if r not in rows),
                                            vendors=tuple(k for k in base.masked.vendors if k not in self.vendors)))

    def lacking(self, entries: Entries) -> list[str]:
        """Which of these entries this set does not have, each as "GL code 400", "tracking row Region/North",
        "vendor ID" or "setting NAME"."""
        rows = {(r["xero_category"], r["xero_option"]) for r in self.tracking} | set(self.masked.tracking)
        return ([f"GL code {code}" for code in entries.gl if code not in self.gl and code not in self.masked.gl]
                + [f"tracking row {c}/{o}" for c, o in entries.tracking if (c, o) not in rows]
                + [f"vendor {vendor}" for vendor in entries.vendors
                   if vendor not in self.vendors and vendor not in self.masked.vendors]
                + [f"setting {name}" for name in entries.settings if name not in self.settings])

    def as_json(self) -> dict[str, Any]:
        found = {"settings": self.settings, "gl": self.gl, "tracking": self.tracking, "vendors": self.vendors}
        if self.masked:
            masked = self.masked.as_json()
            del masked["settings"]
            found["masked"] = masked
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MappingSetData:
        masked = data.get("masked") or {}
        return cls(settings=dict(data.get("settings") or {}), gl=dict(data.get("gl") or {}),
                   tracking=list(data.get("tracking") or []), vendors=dict(data.get("vendors") or {}),
                   masked=Entries(gl=tuple(masked.get("gl") or ()),
                                  tracking=tuple((str(c), str(o)) for c, o in masked.get("tracking") or ()),
                                  vendors=tuple(masked.get("vendors") or ())))


def rules_from(settings: dict[str, Any]) -> TenantRules:
    defaults = TenantRules()
    return TenantRules(
        eligible_statuses=tuple(settings.get("eligible_statuses", defaults.eligible_statuses)),
        credit_note_statuses=tuple(settings.get("credit_note_statuses", defaults.credit_note_statuses)),
        po_fields=tuple(settings.get("po_fields", defaults.po_fields)),
        billable_po_statuses=tuple(settings.get("billable_po_statuses", defaults.billable_po_statuses)),
        amount_tolerance=Decimal(str(settings.get("amount_tolerance", defaults.amount_tolerance))),
        amount_tolerance_percent=Decimal(str(settings.get("amount_tolerance_percent",
                                                          defaults.amount_tolerance_percent))),
        allow_partial_billing=bool(settings.get("allow_partial_billing", defaults.allow_partial_billing)),
        require_tax_number=bool(settings.get("require_tax_number", False)),
        require_vendor_map=bool(settings.get("require_vendor_map", False)),
        unmapped_tracking=UnmappedTracking(settings.get("unmapped_tracking", defaults.unmapped_tracking.value)),
        policies={**defaults.policies,
                  **{ReasonClass(k): Policy(v) for k, v in (settings.get("policies") or {}).items()}},
    )


def load_mapping_set(settings: Path | None = None, gl: Path | None = None, tracking: Path | None = None,
                     vendors: Path | None = None, *, base: MappingSetData | None = None) -> MappingSetData:
    """Files not given keep their part of `base` (the set in force); all problems are raised at once."""
    base = base or MappingSetData()
    problems: list[str] = []
    loaded_settings = _load_settings(settings, problems) if settings else base.settings
    gl_rows = _load_rows(gl, GlRowSchema(), ("xero_account_code",), problems, DRAFT_COLUMNS["gl"]) if gl else None
    tracking_rows = _load_rows(tracking, TrackingRowSchema(), ("xero_category", "xero_option"), problems,
                               DRAFT_COLUMNS["tracking"]) if tracking else None
    vendor_rows = _load_rows(vendors, VendorRowSchema(), ("xero_contact_id",), problems) if vendors else None
    if problems:
        raise ConfigurationError(problems)
    return MappingSetData(
        settings=loaded_settings,
        gl={r["xero_account_code"]: r["stampli_gl_code"] for r in gl_rows} if gl_rows is not None else base.gl,
        tracking=tracking_rows if tracking_rows is not None else base.tracking,
        vendors={str(r["xero_contact_id"]): r["stampli_vendor_code"] for r in vendor_rows}
        if vendor_rows is not None else base.vendors,
    )


def _load_settings(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        document = strict_yaml.load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path.name}: cannot be read as YAML ({type(exc).__name__}: {exc})")
        return {}
    if not isinstance(document, dict):
        problems.append(f"{path.name}: must be a mapping of settings, got {type(document).__name__}")
        return {}
    try:
        loaded: dict[str, Any] = TenantSettingsSchema().load(document)
    except ValidationError as error:
        problems += [f"{path.name}: {where}: {message}" for where, message in _flatten(error.messages)]
        return {}
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in loaded.items()}


EXTRA = "\x00extra"  # where csv puts fields beyond the header

#: What `connector mappings draft` adds beside the map's own columns, for the person filling it in (Xero's
#: name and status of each code); read past on import. A draft row whose Stampli columns are all still
#: empty is a code nobody mapped yet, so it is left out rather than refused.
DRAFT_COLUMNS: dict[str, tuple[str, ...]] = {
    "gl": ("xero_account_name", "xero_account_status"),
    "tracking": ("xero_category_status", "xero_option_status"),
}


def _load_rows(path: Path, schema: Schema, key: tuple[str, ...], problems: list[str],
               draft_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path.name}: cannot be read ({type(exc).__name__})")
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=EXTRA)
    expected = set(schema.fields)
    header = set(reader.fieldnames or [])
    is_draft = bool(draft_columns) and header == expected | set(draft_columns)
    stampli_columns = [name for name in expected if name.startswith("stampli_")]
    if is_draft:
        header = expected
    if header != expected:
        missing, extra = sorted(expected - header), sorted(header - expected)
        problems.append(f"{path.name}: header must be {', '.join(sorted(expected))}"
                        + (f"; missing {', '.join(missing)}" if missing else "")
                        + (f"; unexpected {', '.join(extra)}" if extra else ""))
        return []
    rows: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, ...], int] = {}
    for raw in reader:
        number = reader.line_num  # the file's line, so a blank line or a quoted newline does not shift it
        if EXTRA in raw:
            problems.append(f"{path.name} row {number}: more fields than the header names ({len(expected)})")
            continue
        cleaned = {k: (v or "").strip() for k, v in raw.items() if k is not None and k in expected}
        if is_draft and not any(cleaned.get(name) for name in stampli_columns):
            continue  # a draft row nobody filled in: that code is not mapped
        try:
            row: dict[str, Any] = schema.load(cleaned)
        except ValidationError as error:
            problems += [f"{path.name} row {number} column {where!r}: {message}"
                         for where, message in _flatten(error.messages)]
            continue
        identity = tuple(str(row[k]) for k in key)
        if identity in first_seen:
            problems.append(f"{path.name} row {number}: {', '.join(identity)} is already mapped on row "
                            f"{first_seen[identity]}")
            continue
        first_seen[identity] = number
        rows.append(row)
    return rows


def _flatten(messages: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(messages, dict):
        for name, inner in messages.items():
            yield from _flatten(inner, f"{prefix}.{name}" if prefix else str(name))
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, prefix)
    else:
        yield prefix or "(document)", str(messages)
