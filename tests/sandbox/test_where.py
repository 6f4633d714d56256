"""The `where` subset: what parses, what it selects, and what is a QueryParseException."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sandbox.xero.where import Field, QueryParseError, compile_order, compile_where

pytestmark = pytest.mark.sandbox

ID = uuid.UUID("5c48a136-0d78-4ff3-8585-60875a6bae21")


@dataclass
class Row:
    type: str
    status: str
    number: str
    total: Decimal
    contact: uuid.UUID
    day: datetime
    paid: bool


SCHEMA = {
    "type": Field("Type", "string", lambda r, c: r.type),
    "status": Field("Status", "string", lambda r, c: r.status),
    "invoicenumber": Field("InvoiceNumber", "string", lambda r, c: r.number),
    "total": Field("Total", "number", lambda r, c: r.total),
    "contact.contactid": Field("Contact.ContactID", "guid", lambda r, c: r.contact),
    "date": Field("Date", "datetime", lambda r, c: r.day),
    "haspayments": Field("HasPayments", "bool", lambda r, c: r.paid),
}

ROW = Row("ACCPAY", "AUTHORISED", 'PO-0001 "x"', Decimal("100.50"), ID, datetime(2026, 3, 4, tzinfo=UTC), False)


def matches(text: str, row: Row = ROW) -> bool:
    return compile_where(text, SCHEMA, "Invoice")(row, None)


@pytest.mark.parametrize(("text", "expected"), [
    ('Type=="ACCPAY"', True),
    ('Type == "ACCREC"', False),
    ('type="ACCPAY"', True),
    ('Type!="ACCPAY"', False),
    ('Type<>"ACCREC"', True),
    ('Type=="ACCPAY" AND Status=="AUTHORISED"', True),
    ('Type=="ACCPAY" and Status=="PAID"', False),
    ('Type=="ACCREC" OR Status=="AUTHORISED"', True),
    ('Type=="ACCPAY" && (Status=="PAID" || Status=="AUTHORISED")', True),
    ('NOT (Status=="PAID")', True),
    ('!(Type=="ACCPAY")', False),
    ('InvoiceNumber=="PO-0001 \\"x\\""', True),
    ("Total > 100", True),
    ("Total >= 100.50 AND Total <= 100.5", True),
    ("Total < -1", False),
    (f'Contact.ContactID==Guid("{ID}")', True),
    (f'Contact.ContactID==Guid("{str(ID).upper()}")', True),
    ('Contact.ContactID!=Guid("00000000-0000-0000-0000-000000000000")', True),
    ("Date >= DateTime(2026, 3, 4)", True),
    ("Date > DateTime(2026,03,04,0,0,1)", False),
    ("HasPayments==false", True),
    ("HasPayments", False),
    ('InvoiceNumber.StartsWith("PO-")', True),
    ('InvoiceNumber.Contains("0001")', True),
    ('InvoiceNumber.ToLower().StartsWith("po")', True),
    ('InvoiceNumber.EndsWith("0001")', False),
    ("Total==null", False),
    ("", True),
])
def test_valid_expressions(text: str, expected: bool) -> None:
    assert matches(text) is expected


@pytest.mark.parametrize(("text", "message"), [
    ('Type=="ACCPAY" AND', "Expression expected"),
    ("()", "Expression expected"),
    ('(Type=="ACCPAY"', "')' expected"),
    ('Type=="ACCPAY")', "operator expected"),
    ('Foo=="bar"', "No property or field 'Foo' exists in type 'Invoice'"),
    ('Contact.ContactID=="abc"', "incompatible with operand types 'Guid' and 'String'"),
    ('Type==5', "incompatible"),
    ('Type > "A"', "incompatible"),
    ("Total", "Boolean"),
    ('Guid("nope")==Contact.ContactID', "Guid"),
    ("DateTime(2026, 2, 30)==Date", "Invalid DateTime"),
    ("DateTime(2026, 2)==Date", "DateTime"),
    ('Type=="ACCPAY" Status=="PAID"', "operator expected"),
    ('Total.Contains("1")', "No applicable method"),
    ('Type.Reverse()', "No applicable method"),
    ('Type=="unterminated', "Syntax error"),
    ('Type=="A" # comment', "Syntax error"),
])
def test_invalid_expressions_raise_query_parse_error(text: str, message: str) -> None:
    with pytest.raises(QueryParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_where(text, SCHEMA, "Invoice")


def test_order_parsing() -> None:
    keys = compile_order("Date DESC, Type", SCHEMA, "Invoice")
    assert [(f.name, desc) for f, desc in keys] == [("Date", True), ("Type", False)]
    for bad in ("Nope ASC", "Date SIDEWAYS", "Date ASC extra", ""):
        with pytest.raises(QueryParseError):
            compile_order(bad, SCHEMA, "Invoice")
