"""Every number the sandbox uses, and every decision it makes where Xero's documentation is silent.

Each constant says what Xero documents (or that it does not) and what the sandbox does; the code reads
these constants, so a choice is changed here and nowhere else. Choices that are shapes rather than
numbers are listed at the end with the function that implements them. The README's "Choices" section
mirrors this file; change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime

# --- Identity ----------------------------------------------------------------------------------------

#: Access tokens live 30 minutes (documented: `expires_in` 1800).
ACCESS_TOKEN_SECONDS = 1800

#: Authorisation codes are single-use; their lifetime is not documented. The sandbox gives 5 minutes.
AUTH_CODE_SECONDS = 300

#: An unused refresh token expires after 60 days (documented).
REFRESH_TOKEN_IDLE_SECONDS = 60 * 24 * 3600

#: Xero lets a rotated refresh token be retried for 30 minutes when the refresh answer was lost. The
#: sandbox is stricter on purpose: the old token answers `invalid_grant` at once, so a connector that
#: forgets to store the new token fails in tests instead of in production.
REFRESH_TOKEN_GRACE_SECONDS = 0

#: Xero's 401 body for an unknown or malformed bearer token is not documented; expired tokens get
#: "TokenExpired: token expired at MM/DD/YYYY HH:MM:SS" (documented by examples), these get this Detail.
INVALID_BEARER_DETAIL = "AuthenticationUnsuccessful"

#: Scopes granted when the client asks for none.
DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.transactions.read accounting.contacts.read "
    "accounting.settings.read"
)

# --- Paging and queries ------------------------------------------------------------------------------

#: Records per page when `page` is given without `pageSize` (documented: 100).
DEFAULT_PAGE_SIZE = 100

#: Largest page served (documented: 1,000). A larger `pageSize` is clamped to 1,000 rather than
#: rejected, as Xero does in practice; `pagination.pageSize` reports the clamped value. A `pageSize`
#: below 1 falls back to the default.
MAX_PAGE_SIZE = 1000

#: `IDs=` with this many GUIDs or more answers 404 plain text, as Xero's URL-length limit does.
IDS_NOT_FOUND_AT = 53

#: Whether `pagination` is present on requests without `page` is undocumented; the sandbox leaves it out.
PAGINATION_ON_UNPAGED = False

#: Unpaged invoice lists carry no line items. Xero's docs say they are "not returned"; the sandbox sends
#: `"LineItems": []` (True) rather than leaving the key out, the stricter case for a client, which must
#: not read an empty list as "this bill has no lines".
UNPAGED_INVOICES_SEND_EMPTY_LINE_ITEMS = True

#: GET /Invoices returns every status, DELETED and VOIDED included, unless filtered.
INVOICE_LIST_HIDES_DELETED = False

#: Contacts lists leave ARCHIVED contacts out unless includeArchived=true (documented). Whether `IDs=`
#: alone brings them back is undocumented; the sandbox says no (the stricter reading).
CONTACT_IDS_INCLUDE_ARCHIVED = False

#: An If-Modified-Since header the sandbox cannot read (ISO 8601, zone-less meaning UTC, or RFC 1123 are
#: read) answers 400 ValidationException instead of being ignored, so a badly formatted watermark is
#: caught in tests instead of silently turning every poll into a full read.
REJECT_UNREADABLE_IF_MODIFIED_SINCE = True

#: `where` string comparisons are case-sensitive (undocumented; the stricter reading).
WHERE_STRINGS_CASE_SENSITIVE = True

#: Separator between two PO numbers copied into one bill's InvoiceNumber (undocumented).
PO_NUMBER_SEPARATOR = ", "

# --- Rate limits ---------------------------------------------------------------------------------------

TENANT_MINUTE_LIMIT = 60
TENANT_DAY_LIMIT = 5000
TENANT_CONCURRENT_LIMIT = 5
APP_MINUTE_LIMIT = 10000

#: Minute windows (tenant and app) roll: a call counts for the 60 seconds after it was made.
MINUTE_WINDOW_SECONDS = 60

#: The day window is fixed per tenant: it opens with the tenant's first counted call and resets 24 hours
#: later (Xero's current guide speaks of fixed windows that reset at different times per tenant). A
#: day-limit Retry-After is the number of seconds until that reset. All windows and every Retry-After
#: are in sandbox seconds (see the clock's time scale).
DAY_WINDOW_SECONDS = 24 * 3600

#: Whether concurrent and app-minute 429s carry Retry-After is undocumented; the sandbox always sends
#: one: 1 second for `concurrent`, the time until the oldest call leaves the window for `appminute`.
CONCURRENT_RETRY_AFTER_SECONDS = 1

#: Which problem is reported when several limits are exceeded at once (undocumented).
LIMIT_CHECK_ORDER = ("day", "appminute", "minute", "concurrent")

#: Whether a rejected (429) call counts against the limits is undocumented; it does not. 401 and 403
#: answers come before the limiter and are not counted; every call that reaches an endpoint is, whatever
#: its status. Remaining-count headers are on every answer that reached the limiter.
REJECTED_CALLS_COUNT = False

# --- Dataset -----------------------------------------------------------------------------------------

#: The seeded data ends here so it is identical whatever day the sandbox runs; the sandbox clock itself
#: starts at the real time (or `clock_start`).
DATASET_END = datetime(2026, 6, 30, 18, 0, 0, tzinfo=UTC)

#: How far back bills and purchase orders go.
DATASET_DAYS = 365

# --- Choices that are shapes, not numbers (where they live) --------------------------------------------
#
# * Bodies are always JSON, whatever Accept says (Xero answers XML unless JSON is asked for); 404 and 503
#   are plain text as Xero's are. -> responses.py
# * Default order is creation order, stable while records change, so offset paging without `order` does
#   not skip records (Xero's default is undocumented). -> store.py
# * PurchaseOrders are always paged (page 1 when `page` is absent) and always carry line items; `where`
#   is ignored there (the spec has none). -> accounting.purchase_orders
# * `GET /Invoices/{number}` returns every invoice with that number (bill numbers are not unique).
#   -> store.find_invoices
# * `createdByMyApp=true` returns nothing: the sandbox's data was not created through the API.
#   -> accounting.invoices
# * Paths and query parameter names are case-insensitive (the SDK calls `/Connections`). -> app.py, query.Args
# * A 429 body is `{"Title": "Too Many Requests", "Status": 429, "Detail": ...}`; a 500 body is Xero's
#   problem shape with its "An error occurred in Xero" text. -> app.py, faults.py
# * Revoking a refresh token empties its grant's connections; its access tokens then get 403 until they
#   expire. Refreshing does not end older access tokens either: they live out their 30 minutes. -> identity.py
# * Connections' createdDateUtc/updatedDateUtc are zone-less with seven fractional digits, as in Xero's
#   example. -> identity._net_datetime
# * Approved bills can carry a description-only "heading" line with no AccountCode (Xero allows lines
#   with no amount and no account); a DRAFT bill has a priced line with no AccountCode. -> hardcases.py
