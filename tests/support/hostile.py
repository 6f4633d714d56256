"""Hostile Xero data for tests: records generated from the schemas in Xero's own OpenAPI document, then
mutated (nulls, wrong types, huge and non-finite numbers, dates out of range, long strings, unicode of
every plane, lone surrogates, duplicate ids), and a wrapper that serves them inside the sandbox's real
answers, so they travel the real client, poll and mapping.

Each generated record says what the connector must make of it: `field` is None for a record it must use
as usual, else the field its reason must name."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from connector.errors import XeroRequestRejected

OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "reference" / "xero" / "xero_accounting.yaml"
MSDATE = {"type": "string", "pattern": r"^/Date\(1[0-6][0-9]{11}\+0000\)/\Z"}
MONEY = {"type": "number", "minimum": -1_000_000, "maximum": 1_000_000}
HUGE = json.loads('{"v": 1E+999999}')["v"]  # what Python's JSON reader (and requests) make of it
BIG_STRING = 10 * 1024 * 1024


@dataclass
class Hostile:
    """One record to serve, and what must become of it."""

    data: Any
    record_id: str | None  # the id it is stored under when usable (None: derived by the connector)
    field: str | None  # None: must be used as usual; else the field its reason must name
    stamp_ms: int = 0


@cache
def _bill_schema_cached() -> dict[str, Any]:
    return _bill_schema()


@cache
def schemas() -> dict[str, Any]:
    document = yaml.load(OPENAPI.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def json_schema(name: str, keep: tuple[str, ...], nested: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON schema for `name` from Xero's OpenAPI document: the properties in `keep`, refs to enums
    resolved, Xero's /Date()/ and money extensions turned into what the JSON carries."""
    source = schemas()[name]["properties"]
    properties: dict[str, Any] = {}
    for prop in keep:
        if nested and prop in nested:
            properties[prop] = nested[prop]
            continue
        spec = dict(source[prop])
        if "$ref" in spec:
            spec = {**schemas()[spec.pop("$ref").rsplit("/", 1)[1]], **{k: v for k, v in spec.items() if k != "type"}}
        if spec.get("x-is-msdate") or spec.get("x-is-msdate-time") or spec.get("format") in ("date", "date-time"):
            properties[prop] = MSDATE
        elif spec.get("type") == "number":
            properties[prop] = MONEY
        elif spec.get("type") == "boolean":
            properties[prop] = {"type": "boolean"}
        else:
            text: dict[str, Any] = {"type": "string", "maxLength": min(int(spec.get("maxLength", 40)), 40)}
            if "enum" in spec:
                text = {"enum": spec["enum"]}
            properties[prop] = text
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _bill_schema() -> dict[str, Any]:
    tracking = json_schema("LineItemTracking", ("Name", "Option", "TrackingCategoryID", "TrackingOptionID"))
    line = json_schema("LineItem", ("Description", "Quantity", "UnitAmount", "TaxType", "TaxAmount", "LineAmount",
                                    "DiscountRate"),
                       {"Tracking": {"type": "array", "items": tracking, "maxItems": 2}})
    line["required"] = ["LineAmount"]
    return json_schema("Invoice", ("Type", "Date", "DueDate", "LineAmountTypes", "InvoiceNumber", "Reference",
                                   "CurrencyCode", "CurrencyRate", "Status", "SentToContact", "SubTotal", "TotalTax",
                                   "Total", "AmountDue", "AmountPaid", "HasAttachments"),
                       {"LineItems": {"type": "array", "items": line, "minItems": 1, "maxItems": 3}})


def records_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Instances of a JSON schema. Objects and arrays are composed here, their leaves drawn by
    hypothesis-jsonschema (whose own object strategy does not run on this version of Hypothesis)."""
    if schema.get("type") == "object":
        properties = {name: records_of(spec) for name, spec in schema["properties"].items()}
        required = {name: properties.pop(name) for name in schema.get("required", [])}
        return st.fixed_dictionaries(required, optional=properties)
    if schema.get("type") == "array":
        return st.lists(records_of(schema["items"]), min_size=schema.get("minItems", 0),
                        max_size=schema.get("maxItems", 5))
    return from_schema(schema)


def _clean(value: Any) -> Any:
    """What Xero itself could hold: no NUL, amounts at cents."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# --- mutations: (field path, strategy of the bad value); a path "LineItems[1]..." needs a line -------------

TEXT_EVERY_PLANE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                           min_size=1, max_size=30)
NOT_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), HUGE, "NaN", "Infinity", "1E+999999"])
WRONG_TYPE = st.sampled_from([[], {}, True, [1], {"Value": 1}])
BAD_DATE = st.sampled_from(["/Date(253402300800000)/", "/Date(253402300800000+0000)/", "/Date(-62135596800001)/",
                            "/Date(99999999999999999999)/", "yesterday", "2024-02-30", "10000-01-01", 1700000000000])


def _rarely_huge(minimum: int) -> st.SearchStrategy[str]:
    return st.integers(0, 99).flatmap(
        lambda roll: st.just("y" * BIG_STRING) if roll == 0 else
        st.integers(minimum, minimum + 300).map(lambda n: "z" * n))


BILL_MUTATIONS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("Total", st.one_of(NOT_FINITE, WRONG_TYPE, st.none(), st.just(1e16))),
    ("SubTotal", st.one_of(NOT_FINITE, WRONG_TYPE)),
    ("TotalTax", NOT_FINITE),
    ("CurrencyRate", NOT_FINITE),
    ("UpdatedDateUTC", BAD_DATE),
    ("Date", BAD_DATE),
    ("DueDate", BAD_DATE),
    ("Status", st.one_of(_rarely_huge(33), WRONG_TYPE, st.none())),
    ("Type", st.one_of(st.none(), WRONG_TYPE)),
    ("InvoiceID", st.one_of(_rarely_huge(65), st.none(), st.just(""), st.just(12), st.just("bad\x00id"))),
    ("InvoiceNumber", st.one_of(_rarely_huge(256), WRONG_TYPE, st.just("a\ud800b"))),
    ("Reference", st.one_of(_rarely_huge(4001), st.just("\udfff"))),
    ("Contact", st.sampled_from([None, "Acme", [], 7])),
    ("Contact.ContactID", st.one_of(st.none(), _rarely_huge(65), st.just(5))),
    ("LineItems", st.sampled_from(["Copper pipe", {"Description": "x"}, 5, True])),
    ("LineItems[1]", st.sampled_from([None, "a line", 3, []])),
    ("LineItems[1].LineAmount", st.one_of(NOT_FINITE, st.none(), WRONG_TYPE)),
    ("LineItems[1].Quantity", NOT_FINITE),
    ("LineItems[1].Description", st.one_of(_rarely_huge(4001), st.just("x\x00y"), WRONG_TYPE)),
    ("LineItems[1].Tracking", st.sampled_from(["Region", {"Name": "Region"}, 1])),
    ("LineItems[1].Tracking[1]", st.sampled_from([None, "North", 2])),
]
# Fields the connector does not read: anything there leaves the bill usable.
HARMLESS = st.tuples(st.sampled_from(["AmountDue", "AmountPaid", "HasAttachments", "Payments", "Url", "Warnings"]),
                     st.one_of(st.none(), NOT_FINITE, WRONG_TYPE, TEXT_EVERY_PLANE))


_SERIAL = itertools.count(1)


def _unique_id() -> str:
    return str(uuid.UUID(int=(uuid.uuid4().int & ~(2**64 - 1)) | next(_SERIAL), version=4))


def _set(record: dict[str, Any], path: str, value: Any) -> bool:
    """Set a dotted path with [n] indexes (1-based); False when the record has no such place."""
    target: Any = record
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        if part.startswith("["):
            index = int(part[1:-1]) - 1
            if not isinstance(target, list) or len(target) <= index:
                return False
            target = target[index]
        else:
            if not isinstance(target, dict) or part not in target:
                return False
            target = target[part]
    last = parts[-1]
    if last.startswith("["):
        index = int(last[1:-1]) - 1
        if not isinstance(target, list) or len(target) <= index:
            return False
        target[index] = value
        return True
    if not isinstance(target, dict):
        return False
    target[last] = value
    return True


@st.composite
def bill_pages(draw: st.DrawFn, contact_ids: list[str], stamp_from_ms: int, size: int = 6) -> list[Hostile]:
    """A page of bills generated from Xero's Invoice schema, some mutated; stamps from `stamp_from_ms` on."""
    page: list[Hostile] = []
    for position in range(draw(st.integers(1, size))):
        data = _clean(draw(records_of(_bill_schema_cached())))
        invoice_id = _unique_id()  # duplicates are made on purpose below, never by chance
        stamp = stamp_from_ms + position * 1000 + draw(st.integers(0, 999))
        data.update(InvoiceID=invoice_id, UpdatedDateUTC=f"/Date({stamp}+0000)/",
                    Contact={"ContactID": draw(st.sampled_from(contact_ids)), "Name": draw(TEXT_EVERY_PLANE)})
        data.setdefault("Type", "ACCPAY")
        data.setdefault("Status", "AUTHORISED")
        data.setdefault("Total", 0)
        if draw(st.booleans()):
            data["InvoiceNumber"] = draw(TEXT_EVERY_PLANE)  # unicode of every plane: still a good bill
        hostile = Hostile(data, invoice_id, None, stamp)
        choice = draw(st.integers(0, 3))
        if choice == 0:  # mutate a field the connector reads: the bill must be held naming it
            path, values = draw(st.sampled_from(BILL_MUTATIONS))
            if _set(data, path, draw(values)):
                hostile.field = path
                if path in ("InvoiceID", "UpdatedDateUTC"):
                    hostile.record_id = None if path == "InvoiceID" else invoice_id
        elif choice == 1:  # a field it does not read
            name, value = draw(HARMLESS)
            data[name] = value
        page.append(hostile)
        if choice == 2 and draw(st.booleans()):  # the same bill twice in the page, an older version first
            older = json.loads(json.dumps(data, allow_nan=True))
            older["UpdatedDateUTC"] = f"/Date({stamp - 500}+0000)/"
            older["Total"] = "older version"
            page.insert(len(page) - 1, Hostile(older, invoice_id, "superseded", stamp - 500))
    return page


@st.composite
def contact_records(draw: st.DrawFn) -> list[Hostile]:
    """Suppliers from Xero's Contact schema, some mutated where the connector reads them."""
    schema = json_schema("Contact", ("Name", "ContactStatus", "FirstName", "TaxNumber", "IsSupplier", "IsCustomer",
                                     "EmailAddress", "UpdatedDateUTC"))
    records = []
    for _ in range(draw(st.integers(1, 3))):
        data = _clean(draw(records_of(schema)))
        contact_id = _unique_id()
        data["ContactID"] = contact_id
        hostile = Hostile(data, contact_id, None)
        if draw(st.booleans()):
            path, values = draw(st.sampled_from([
                ("ContactStatus", st.one_of(_rarely_huge(33), WRONG_TYPE)), ("Name", _rarely_huge(256)),
                ("IsSupplier", st.sampled_from(["yes", 1, [], None]).filter(lambda v: v is not None)),
                ("UpdatedDateUTC", BAD_DATE), ("MergedToContactID", _rarely_huge(65)),
            ]))
            data[path] = draw(values)
            hostile.field = path
        records.append(hostile)
    return records


class HostileXero:
    """The real Xero client, with records of our own served in its next answer of an endpoint (appended to
    what the sandbox answered, as one JSON answer would carry them: NaN and 1E+999999 included), or the
    endpoint's list replaced (a missing or mangled envelope)."""

    MISSING = object()

    def __init__(self, real: Any) -> None:
        self.real = real
        self.extra: dict[str, list[Any]] = {}
        self.envelope: dict[str, Any] = {}
        self.refused_ids: set[str] = set()

    def refuse(self, xero_id: str) -> None:
        """Xero answers 400 to any `IDs=` request naming this id (as it does for ids it cannot take)."""
        self.refused_ids.add(xero_id)

    def serve(self, endpoint: str, records: list[Any]) -> None:
        self.extra.setdefault(endpoint, []).extend(records)

    def mangle(self, endpoint: str, value: Any) -> None:
        self.envelope[endpoint] = value

    def get(self, token: Any, tenant_id: str, endpoint: str, params: Any, *, modified_since: Any = None) -> Any:
        if "IDs" in params and self.refused_ids & set(str(params["IDs"]).split(",")):
            raise XeroRequestRejected(f"Xero {endpoint} (tenant {tenant_id}): HTTP 400: ValidationException")
        body = self.real.get(token, tenant_id, endpoint, params, modified_since=modified_since)
        if "IDs" in params:
            return body
        if endpoint in self.envelope:
            value = self.envelope.pop(endpoint)
            if value is self.MISSING:
                body.pop(endpoint, None)
            else:
                body[endpoint] = value
            return body
        if endpoint in self.extra:
            served = [*body.get(endpoint, []), *self.extra.pop(endpoint)]
            body = {**body, endpoint: json.loads(json.dumps(served, allow_nan=True))}
        return body
