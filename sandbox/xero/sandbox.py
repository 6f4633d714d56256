"""`XeroSandbox`: the Python face of the sandbox for tests, demos and benchmarks.

    with XeroSandbox(seed=42, tenants=2, bills=1000) as sandbox:   # starts on a free loopback port
        consent = sandbox.consent()
        ...

Everything the admin API can do is also a method here.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

from sandbox.xero.app import SandboxApp
from sandbox.xero.faults import Faults
from sandbox.xero.model import Dataset
from sandbox.xero.ratelimit import Limits
from sandbox.xero.server import SandboxServer
from sandbox.xero.state import SandboxState
from sandbox.xero.webhooks import WebhookSender


class XeroSandbox:
    """A Xero look-alike on one port, with a dataset built deterministically from `seed`.

    `bills` is per tenant. `time_scale` is sandbox seconds per real second (token expiry and rate-limit
    windows run on the sandbox clock); `clock_start` pins the sandbox's "now" (default: the real time).
    """

    def __init__(self, seed: int = 42, tenants: int = 2, bills: int = 1000, time_scale: float = 1.0, *,
                 clock_start: datetime | None = None) -> None:
        self.state = SandboxState(seed, tenants, bills, time_scale, clock_start)
        self.app = SandboxApp(self.state)
        self._server: SandboxServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False) -> XeroSandbox:
        """Serve in a background thread; port 0 picks a free port (read it from `base_url`)."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self._server = SandboxServer(self.app, host, port, access_log=access_log)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> XeroSandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the sandbox first")
        return self._server.base_url

    @property
    def urls(self) -> dict[str, str]:
        return self.state.urls(self.base_url)

    # --- credentials -----------------------------------------------------------------------------------

    def consent(self, tenant_ids: list[str] | None = None) -> dict[str, Any]:
        """A fresh user consent to the given (default: all) tenants: client id/secret, refresh token, URLs."""
        return self.state.consent(self.base_url, tenant_ids)

    def custom_connection(self, tenant_index: int = 0) -> dict[str, Any]:
        """A custom connection (client_credentials, no tenant header needed) to one tenant."""
        return self.state.custom_connection(self.base_url, tenant_index)

    def expire_tokens(self) -> int:
        """Every access token expires now; returns how many were live."""
        return self.state.identity.expire_access_tokens()

    # --- data ------------------------------------------------------------------------------------------

    @property
    def dataset(self) -> Dataset:
        """The live dataset: tenants with organisation, accounts, tracking, contacts, POs and invoices."""
        return self.state.store.dataset

    @property
    def tenant_ids(self) -> list[str]:
        return self.state.store.tenant_ids

    def answer_key(self, tenant_id: str) -> dict[str, list[str]]:
        """InvoiceID -> the PurchaseOrderNumbers each bill really belongs to ([] for none)."""
        return self.state.answer_key(tenant_id)

    def update(self, tenant_id: str | None = None, *, modify: int = 0, add: int = 0) -> dict[str, Any]:
        """Modify `modify` bills and add `add` bills in one tenant, stamped with the sandbox's now."""
        return self.state.update(tenant_id, modify, add)

    def add_credit_note(self, tenant_id: str | None, invoice_id: str, *, fraction: str = "0.25",
                        allocate: bool = True) -> dict[str, Any]:
        """A supplier credit note for part of bill `invoice_id`, allocated to it unless `allocate` is false."""
        return self.state.add_credit_note(tenant_id, invoice_id, fraction=fraction, allocate=allocate)

    def allocate_credit_note(self, tenant_id: str | None, credit_note_id: str, invoice_id: str, *,
                             amount: str | None = None) -> dict[str, Any]:
        """Apply `amount` (default: all it can) of a credit note to a bill; the bill's AmountDue,
        AmountCredited, CreditNotes and UpdatedDateUTC move, and a bill credited in full is PAID."""
        return self.state.allocate_credit_note(tenant_id, credit_note_id, invoice_id, amount=amount)

    def edit_purchase_order(self, tenant_id: str | None, purchase_order_id: str, *, status: str | None = None,
                            delivery_instructions: str | None = None) -> dict[str, Any]:
        """Change a PO's status and/or delivery instructions, stamped now (its UpdatedDateUTC moves)."""
        return self.state.edit_purchase_order(tenant_id, purchase_order_id, status=status,
                                              delivery_instructions=delivery_instructions)

    def reseed(self, seed: int | None = None, tenants: int | None = None, bills: int | None = None) -> None:
        self.state.reseed(seed, tenants, bills)

    def reset(self) -> None:
        self.state.reset()

    # --- clock, limits, faults, stats --------------------------------------------------------------------

    def now(self) -> datetime:
        return self.state.clock.now()

    def advance(self, seconds: float) -> datetime:
        return self.state.clock.advance(seconds)

    def set_time_scale(self, time_scale: float) -> None:
        self.state.clock.set_time_scale(time_scale)

    def set_limits(self, **changes: int) -> Limits:
        """Change rate limits: minute, day, concurrent, app_minute."""
        return self.state.limiter.set_limits(**changes)

    @property
    def faults(self) -> Faults:
        """`configure(error_rate=, error_statuses=, latency_ms=)`, `fail_next(path, count, status)`, `clear()`."""
        return self.state.faults

    def stats(self) -> dict[str, Any]:
        return self.state.stats.snapshot()

    @property
    def webhooks(self) -> WebhookSender:
        """`configure(url, key=None)` (runs intent to receive), `flush()`, `deliveries`: Xero's webhooks."""
        return self.state.webhooks

    def requests_received(self, path_prefix: str = "/api.xro/") -> int:
        """Requests that have arrived (by default the Accounting API's), including those still waiting on
        an injected latency: a test counts a client's tries at once, without waiting for the answers."""
        return self.state.stats.received(path_prefix)

    def calls_timeline(self) -> list[tuple[float, str, int]]:
        """(monotonic seconds, endpoint, status) of every counted call, oldest first."""
        return self.state.stats.timeline()
