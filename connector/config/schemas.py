"""marshmallow schemas for a tenant's mapping settings (YAML) and maps (CSV rows)."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from connector.domain.rules import Policy, ReasonClass, UnmappedTracking

ELIGIBLE_BILL_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID")  # never voided or deleted bills
XERO_PO_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "BILLED", "DELETED")
PO_FIELDS = ("InvoiceNumber", "Reference", "LineDescriptions")


class AttachmentsSchema(Schema):
    """Which of a bill's documents go with it to Stampli: none (off), its PDFs, or all; and a size cap."""

    class Meta:
        unknown = RAISE

    mode = fields.String(validate=validate.OneOf(["off", "pdf", "all"]))
    max_bytes = fields.Integer(strict=True, validate=validate.Range(min=1, max=100 * 1024 * 1024))


class TenantSettingsSchema(Schema):
    """The YAML document: every key optional, every value checked, unknown keys refused."""

    class Meta:
        unknown = RAISE

    eligible_statuses = fields.List(fields.String(validate=validate.OneOf(ELIGIBLE_BILL_STATUSES)),
                                    validate=validate.Length(min=1))
    credit_note_statuses = fields.List(fields.String(validate=validate.OneOf(ELIGIBLE_BILL_STATUSES)),
                                       validate=validate.Length(min=1))
    po_fields = fields.List(fields.String(validate=validate.OneOf(PO_FIELDS)), validate=validate.Length(min=1))
    billable_po_statuses = fields.List(fields.String(validate=validate.OneOf(XERO_PO_STATUSES)),
                                       validate=validate.Length(min=1))
    amount_tolerance = fields.Decimal(as_string=True, validate=validate.Range(min=0))
    amount_tolerance_percent = fields.Decimal(as_string=True, validate=validate.Range(min=0, max=100))
    allow_partial_billing = fields.Boolean()
    require_tax_number = fields.Boolean()
    require_vendor_map = fields.Boolean()
    attachments = fields.Nested(AttachmentsSchema)
    unmapped_tracking = fields.String(validate=validate.OneOf([u.value for u in UnmappedTracking]))
    policies = fields.Dict(keys=fields.String(validate=validate.OneOf([c.value for c in ReasonClass])),
                           values=fields.String(validate=validate.OneOf([p.value for p in Policy])))


class _Row(Schema):
    class Meta:
        unknown = RAISE


def _text(**kwargs: Any) -> fields.String:
    """A code or a name: 1 to 255 characters, no control characters (a newline inside is a typo)."""
    return fields.String(required=True, validate=[validate.Length(min=1, max=255), validate.Regexp(
        r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters such as newlines")], **kwargs)


class GlRowSchema(_Row):
    xero_account_code = _text()
    stampli_gl_code = _text()


class TrackingRowSchema(_Row):
    """`xero_option` "*" maps every option of the category; `stampli_value` "*" sends the option's name."""

    xero_category = _text()
    xero_option = _text()
    stampli_dimension = _text()
    stampli_value = _text()


class VendorRowSchema(_Row):
    xero_contact_id = fields.UUID(required=True)
    stampli_vendor_code = _text()

    @validates_schema
    def _no_blank_code(self, data: dict[str, Any], **_: Any) -> None:
        if not str(data.get("stampli_vendor_code", "")).strip():
            raise ValidationError("must not be blank", "stampli_vendor_code")
