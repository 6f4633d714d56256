"""Every number and every decision the sandbox makes where Xero's documentation is silent or unclear.

Each constant says what Xero documents (or that it does not) and what the sandbox does. The README's
"Choices" section mirrors this file; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime

# --- Identity ----------------------------------------------------------------------------------------

#: Access tokens live 30 minutes (documented: `expires_in` 1800).
ACCESS_TOKEN_SECONDS = 1800

#: Authorisation codes are single-use and short-lived; the sandbox gives them 5 minutes.
AUTH_CODE_SECONDS = 300

#: An unused refresh token expires after 60 days (documented).
REFRESH_TOKEN_IDLE_SECONDS = 60 * 24 * 3600

#: Xero lets a rotated refresh token be retried for 30 minutes when the refresh answer was lost. The
#: sandbox is stricter on purpose: the old token answers `invalid_grant` at once, so a connector that
#: forgets to store the new token fails in tests instead of in production 30 minutes later.
REFRESH_TOKEN_GRACE_SECONDS = 0

#: Unknown, malformed or revoked-signature tokens: Xero's body for this case is not documented; the
#: sandbox answers 401 with this Detail (expired tokens get "TokenExpired: token expired at ...").
INVALID_BEARER_DETAIL = "AuthenticationUnsuccessful"

#: Scopes granted when the client asks for none.
DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.transactions.read accounting.contacts.read "
    "accounting.settings.read"
)

# --- Paging and queries ------------------------------------------------------------------------------

#: Records per page when `page` is given without `pageSize` (documented: 100).
DEFAULT_PAGE_SIZE = 100

#: Largest page served. Xero documents a maximum of 1,000; a larger `pageSize` is clamped to 1,000
#: (not rejected), which is what Xero does in practice. The pagination object reports the clamped size.
MAX_PAGE_SIZE = 1000

#: `IDs=` with this many GUIDs or more answers 404 plain text, as Xero's URL-length limit does.
IDS_NOT_FOUND_AT = 53

#: Xero does not document whether `pagination` is present on unpaged requests; the sandbox sends it only
#: when `page` is given (and always on PurchaseOrders, which Xero pages by default).
PAGINATION_ON_UNPAGED = False

#: Xero's default order is undocumented. The sandbox returns records in creation order, which is stable
#: while records change (so offset paging without `order` does not skip records).
DEFAULT_ORDER = "creation"

#: GET /Invoices returns every status (DELETED and VOIDED included) unless filtered: Xero's lists do
#: show them and the connector must notice deletions of delivered bills.
INVOICE_LIST_HIDES_DELETED = False

#: Contacts in lists: ARCHIVED ones need includeArchived=true (documented). `IDs=` alone does not
#: bring archived contacts either (undocumented; the stricter reading).
CONTACT_IDS_INCLUDE_ARCHIVED = False

#: Separator between two PO numbers copied into one bill's InvoiceNumber (Xero's is undocumented).
PO_NUMBER_SEPARATOR = ", "

# --- Rate limits ---------------------------------------------------------------------------------------

TENANT_MINUTE_LIMIT = 60
TENANT_DAY_LIMIT = 5000
TENANT_CONCURRENT_LIMIT = 5
APP_MINUTE_LIMIT = 10000

#: Minute windows (tenant and app) roll: a call counts for the 60 seconds after it was made.
MINUTE_WINDOW_SECONDS = 60

#: The day window is fixed per tenant: it opens with the tenant's first counted call and resets
#: 24 hours later (Xero's current guide speaks of fixed windows that reset at different times per
#: tenant). A day-limit Retry-After is the number of seconds until that reset.
DAY_WINDOW_SECONDS = 24 * 3600

#: Whether concurrent and app-minute 429s carry Retry-After is undocumented; the sandbox always sends
#: one (1 second for `concurrent`), so a client that honours Retry-After is never told to retry at once.
CONCURRENT_RETRY_AFTER_SECONDS = 1

#: Order in which limits are checked when several are exceeded at once.
LIMIT_CHECK_ORDER = ("day", "appminute", "minute", "concurrent")

#: A rejected (429) call does not count against any limit. 401 and 403 answers are given before the
#: limiter and do not count either; every call that reaches an endpoint does, whatever its status.
REJECTED_CALLS_COUNT = False

# --- Dataset -----------------------------------------------------------------------------------------

#: The seeded data ends here so it is identical whatever day the sandbox runs; the sandbox clock
#: itself starts at the real time (or `clock_start`).
DATASET_END = datetime(2026, 6, 30, 18, 0, 0, tzinfo=UTC)

#: How far back bills and purchase orders go.
DATASET_DAYS = 365
