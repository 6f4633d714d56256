"""SQLAlchemy models of the ledger. Same schema on SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, and mixing aware/naive is a bug source."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use UTC-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class XeroGrant(Base):
    """One OAuth2 consent (or custom connection); it may reach several tenants. Tokens encrypted."""

    __tablename__ = "xero_grants"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # authorization_code | client_credentials
    client_id: Mapped[str] = mapped_column(String(200))
    client_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    access_expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")  # ACTIVE | NEEDS_REAUTH
    version: Mapped[int] = mapped_column(Integer, default=0)  # bumped by every committed refresh
    refreshing_until: Mapped[datetime | None]  # lease: one refresher at a time
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SftpTargetRow(Base):
    """Where a tenant's Stampli files go; credentials encrypted, host key pinned."""

    __tablename__ = "sftp_targets"
    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=22)
    username: Mapped[str] = mapped_column(String(200))
    import_dir: Mapped[str] = mapped_column(String(1000))
    host_key: Mapped[str] = mapped_column(Text)
    password_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    private_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class Tenant(Base):
    """A Xero organisation we sync; its cadence, policy knobs and delivery target."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Xero tenantId
    name: Mapped[str] = mapped_column(String(255))
    short_name: Mapped[str] = mapped_column(String(40))  # used in file names
    grant_id: Mapped[int] = mapped_column(ForeignKey("xero_grants.id"))
    sftp_target_id: Mapped[int | None] = mapped_column(ForeignKey("sftp_targets.id"))
    status: Mapped[str] = mapped_column(String(32), default="ACTIVE")  # ACTIVE | DISCONNECTED | PAUSED
    poll_interval_seconds: Mapped[int] = mapped_column(Integer, default=900)
    next_poll_at: Mapped[datetime | None]
    parked_until: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    reference_read_at: Mapped[datetime | None]  # accounts, tracking and contact refresh: a slower cadence
    reference_interval_seconds: Mapped[int] = mapped_column(Integer, default=21600)
    max_bills_per_file: Mapped[int] = mapped_column(Integer, default=500)
    template: Mapped[str | None] = mapped_column(Text)  # the customer's Stampli template (YAML); None = default CSV
    # Liveness of polls: a running poll holds this lease and renews it as it commits each page; a lease
    # that lapsed means the poll's worker died, and the next tick dispatches the tenant again.
    poll_lease_until: Mapped[datetime | None]
    poll_runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # started, not yet finished
    poll_parked_reason: Mapped[str | None] = mapped_column(Text)  # polls stopped until a person acts
    # The mapping profile the tenant shares (its map, template and cadence), or None. The tenant's own
    # mapping set overrides the profile's entry by entry, its own template the profile's, and its own
    # cadence (`own_poll_interval`) the profile's; `poll_interval_seconds` is always the cadence in force.
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("mapping_profiles.id"), index=True)
    own_poll_interval: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Moved by every write to the tenant's contacts or accounts (store.reference): a worker's cached copy of
    # them is good while this is unchanged, so mapping a bill reads one number instead of the rows.
    reference_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Supplier credit notes are read on their own cadence (domain.credit_note_cadence): when the last read
    # began, and when a CREDITNOTE webhook last asked for one (a later ask makes the next poll read them).
    credit_notes_read_at: Mapped[datetime | None]
    credit_notes_asked_at: Mapped[datetime | None]


class MappingSet(Base):
    """One version of a tenant's mapping rules and maps; every mapped bill names the version it used."""

    __tablename__ = "mapping_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "version", name="uq_mapping_sets_tenant_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]  # settings, gl, tracking, vendors (see connector.config.loader)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="connector")


class MappingProfile(Base):
    """A map, a template and a cadence that many tenants share (say a thousand organisations with one
    chart of accounts): each tenant on it uses them unless it has its own."""

    __tablename__ = "mapping_profiles"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    poll_interval_seconds: Mapped[int | None] = mapped_column(Integer)  # None: the tenants keep theirs
    template: Mapped[str | None] = mapped_column(Text)  # Stampli template (YAML); None: our default CSV
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="connector")


class ProfileMappingSet(Base):
    """One version of a profile's mapping rules and maps (the same document as a tenant's MappingSet)."""

    __tablename__ = "profile_mapping_sets"
    __table_args__ = (UniqueConstraint("profile_id", "version", name="uq_profile_mapping_sets_profile_version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("mapping_profiles.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="connector")


class PurchaseOrderRow(Base):
    __tablename__ = "purchase_orders"
    __table_args__ = (Index("ix_purchase_orders_tenant_key", "tenant_id", "key"),)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    purchase_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(20), index=True)  # digits of the number, see po_numbers
    contact_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(BigInteger)  # UpdatedDateUTC in ms
    payload: Mapped[dict[str, Any]]
    unusable_reason: Mapped[str | None] = mapped_column(Text)  # Xero sent it unusable: treated as unknown


_READY_UNFILED = text("state = 'READY' AND batch_id IS NULL")


class Bill(Base):
    """One row per (tenant, Xero InvoiceID): the bill's current state and the version it was mapped from."""

    __tablename__ = "bills"
    __table_args__ = (
        UniqueConstraint("tenant_id", "invoice_id", name="uq_bills_tenant_invoice"),
        Index("ix_bills_tenant_state", "tenant_id", "state"),
        Index("ix_bills_state_id", "state", "id"),  # the sweeper's chunks of DISCOVERED bills (keyset by id)
        Index("ix_bills_documents_retry", "tenant_id", "documents_retry_at"),  # a poll's bills due a document try
        # A file's claim and the sweeper's look: READY bills in no file yet, oldest first (store.batches,
        # store.sweeps), never the NULL range of batch_id, which holds every bill not yet in a file.
        Index("ix_bills_ready_unfiled", "tenant_id", "id", postgresql_where=_READY_UNFILED,
              sqlite_where=_READY_UNFILED),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    invoice_id: Mapped[str] = mapped_column(String(64))  # Xero InvoiceID, or CreditNoteID for a credit note
    # BILL (an ACCPAY invoice) or CREDIT_NOTE (an ACCPAYCREDIT credit note): one life cycle for both
    document_type: Mapped[str] = mapped_column(String(16), default="BILL", server_default="BILL")
    invoice_number: Mapped[str | None] = mapped_column(String(255))
    xero_status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(BigInteger)  # Xero UpdatedDateUTC in ms
    state: Mapped[str] = mapped_column(String(32))
    mapped_version: Mapped[int | None] = mapped_column(BigInteger)
    mapping_version: Mapped[int | None] = mapped_column(Integer)  # the mapping set the bill was mapped with
    mapping_profile_id: Mapped[int | None] = mapped_column(Integer)  # and the profile, when on one
    mapping_profile_version: Mapped[int | None] = mapped_column(Integer)  # with its mapping set's version
    reasons: Mapped[list[Any]] = mapped_column(default=list)  # [{"code": ..., **params}]
    mapping: Mapped[dict[str, Any] | None]  # the Stampli-ready record, built by mapping
    payload: Mapped[dict[str, Any]]  # the Xero invoice as read
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    map_sent_at: Mapped[datetime | None]  # a map message for the current version was handed to the broker
    map_started_at: Mapped[datetime | None]  # a worker began mapping the current version
    map_runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # started, not yet finished
    # A bill held because Xero failed to serve one of its documents: how many tries in a row failed (this
    # version), and when the poll sends it to be tried again (domain.backoff.documents_retry_wait); None
    # for a bill not held for its documents.
    documents_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    documents_retry_at: Mapped[datetime | None]
    # Optimistic lock: every ORM update checks and bumps it, so a poll, a mapping and a claim racing on
    # one bill cannot overwrite each other; the loser's transaction fails and is run again.
    row_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": row_version}


class BillPoLink(Base):
    """Which purchase orders a mapped bill is billed against, and for how much: the running total per PO."""

    __tablename__ = "bill_po_links"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purchase_order_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    amount: Mapped[str] = mapped_column(String(32))  # the bill's total, exact decimal text

    __table_args__ = (Index("ix_bill_po_links_tenant_po", "tenant_id", "purchase_order_id"),)


class MapBacklog(Base):
    """Per tenant, how many bills are DISCOVERED (still to map): kept by every state change (store.backlog),
    so the mapping that takes it to zero asks for the batch without counting the tenant's bills."""

    __tablename__ = "map_backlog"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    to_map: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class BillTransition(Base):
    """Append-only audit: every state change of every bill."""

    __tablename__ = "bill_transitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    invoice_id: Mapped[str] = mapped_column(String(64), index=True)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(BigInteger)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    file_name: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(100), default="connector")
    mapped_with: Mapped[str | None] = mapped_column(String(200))  # a mapping: "set 2 + profile uk v3"


class Batch(Base):
    """One file: its bytes are rendered once and stored with their sha256; every retry sends them."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("tenant_id", "sequence", name="uq_batches_tenant_sequence"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    # bills, or a master-data kind (vendors, gl_accounts, dimensions, purchase_orders): see domain.masterdata
    kind: Mapped[str] = mapped_column(String(32), default="bills", server_default="bills")
    name: Mapped[str] = mapped_column(String(255), unique=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    bill_count: Mapped[int] = mapped_column(Integer)
    sidecar: Mapped[bool] = mapped_column(default=False)  # also deliver "<name>.sha256" after the file
    state: Mapped[str] = mapped_column(String(32))
    staged_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # when the sweeper asks for it again (backoff, or a file it waits for)
    backoff_until: Mapped[datetime | None]  # after a failed attempt, no lease is given before this
    lease_until: Mapped[datetime | None]  # one deliverer at a time; expires if that worker dies
    lease_owner: Mapped[int | None] = mapped_column(Integer)  # the delivery attempt holding the lease
    abandoned_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # workers died
    last_error: Mapped[str | None] = mapped_column(Text)


class MasterDataSetting(Base):
    """Per tenant and master-data kind: whether its files are sent, the customer's template (YAML;
    None = our default for the kind), and when the kind's last finished assemble began reading the ledger
    (`read_from`: every record stored before then is in a committed file; None until one finished since
    the kind was turned on)."""

    __tablename__ = "master_data_settings"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    template: Mapped[str | None] = mapped_column(Text)
    read_from: Mapped[datetime | None] = mapped_column()


class MasterDataRecord(Base):
    """Per tenant, kind and record (its Xero id): the fingerprint of the row last put in a file, and that
    file. A record whose row's fingerprint differs (or that has no row here) goes in the next file."""

    __tablename__ = "master_data_records"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(255), default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MasterDataTransition(Base):
    """Append-only audit of master data, as bill_transitions is for bills: each record put in a file
    (BATCHED), and its file DELIVERED or FAILED."""

    __tablename__ = "master_data_transitions"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(Integer, index=True)
    file_name: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(100), default="connector")


class DeliveryAttempt(Base):
    """Written before the network call, completed after it."""

    __tablename__ = "delivery_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(32), default="STARTED")
    error_class: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    remote_size: Mapped[int | None] = mapped_column(BigInteger)


class Watermark(Base):
    """Per tenant and endpoint: the If-Modified-Since of the next delta read."""

    __tablename__ = "watermarks"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactRow(Base):
    """A Xero contact (vendor) as last read; bills name it by ContactID."""

    __tablename__ = "contacts"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    is_supplier: Mapped[bool] = mapped_column(default=False)
    merged_to: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]]
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
    unusable_reason: Mapped[str | None] = mapped_column(Text)  # Xero sent it unusable: treated as unknown


class AccountRow(Base):
    """The tenant's chart of accounts, read with its own If-Modified-Since."""

    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_tenant_code", "tenant_id", "code"),)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str | None] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(BigInteger)
    unusable_reason: Mapped[str | None] = mapped_column(Text)  # Xero sent it unusable: treated as unknown
    payload: Mapped[dict[str, Any] | None]  # the account as Xero sent it (type, class...: the GL-account file)


class TrackingCategoryRow(Base):
    """A tracking category with its options (archived ones too: old bills use them)."""

    __tablename__ = "tracking_categories"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    category_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    options: Mapped[list[Any]]
    unusable_reason: Mapped[str | None] = mapped_column(Text)  # Xero sent it unusable: treated as unknown


class BrokerEpoch(Base):
    """Each broker generation we have seen: a new one means the broker lost every message it held."""

    __tablename__ = "broker_epochs"
    id: Mapped[int] = mapped_column(primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64), unique=True)
    seen_at: Mapped[datetime]


class OperationalEvent(Base):
    """Append-only record of what happened to grants and tenants (re-auth needed, parked, disconnected)."""

    __tablename__ = "operational_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[int | None] = mapped_column(Integer)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class AttachmentListing(Base):
    """What Xero listed as a bill's documents, for the bill version it was asked at (one call per version);
    each entry says whether the tenant sends it (its mode and size cap)."""

    __tablename__ = "attachment_listings"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    listed: Mapped[list[Any]]  # [{id, attachment_id, file_name, mime_type, content_length, send}]
    listed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AttachmentRow(Base):
    """One supplier document fetched from Xero, kept by its AttachmentID with its sha256: never fetched twice,
    and every batch, retry and replay sends these bytes."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_tenant_invoice", "tenant_id", "invoice_id"),)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attachment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(1000))
    mime_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchDocument(Base):
    """One supplier document a batch delivers as its own file beside the data file (`documents: {layout:
    folder}`): its place under the batch's folder and the attachment whose bytes go there, fixed when the
    batch is rendered, so every retry and replay sends the same bytes under the same names."""

    __tablename__ = "batch_documents"
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)  # relative to the import folder
    position: Mapped[int] = mapped_column(Integer)  # upload order
    invoice_id: Mapped[str] = mapped_column(String(64))
    attachment_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))


class ReconcileRun(Base):
    """A tenant's reconcile under way: where it stopped (its phase, the last delivered InvoiceID compared, the
    next page of a paged read) and what it has found so far, so a reconcile stopped by a spent rate budget,
    a hand-over or a dead worker goes on from there and its report covers the whole run."""

    __tablename__ = "reconcile_runs"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    phase: Mapped[str] = mapped_column(String(16))
    after: Mapped[str] = mapped_column(String(64), default="")
    since: Mapped[datetime | None] = mapped_column(default=None)
    page: Mapped[int] = mapped_column(Integer, default=1)
    found: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the reconcile working on the run, until when (store.reconciliations.take_run): no other may meanwhile
    lease_owner: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)


class ReconcileSeen(Base):
    """A delivered bill a paged reconcile found on one of its pages (kept until the run ends): those of
    the tenant's delivered bills no page returned are read back by `IDs=` at the end of the run."""

    __tablename__ = "reconcile_seen"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
