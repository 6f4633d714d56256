"""What every `connector` command shares, built once per run and only when a command needs it: the
settings, the ledger, the vault and the services; plus the helpers every command uses the same way
(a checked `--tenant`, `--json` output, who is acting)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from connector.crypto import Vault
    from connector.services.context import Services
    from connector.settings import Settings
    from connector.store.db import Ledger

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    """Built by the root group; each part is made on first use, so `--help`, `--version` or
    `keys new` never touch the database, and a command that needs the ledger connects (and migrates) once."""

    _settings: Settings | None = None
    _ledger: Ledger | None = None
    _vault: Vault | None = None
    _services: Services | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from connector.settings import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from connector.store.db import Ledger

            self._ledger = Ledger.connect(self.settings.database_url)
            self.closers.append(self._ledger.dispose)
        return self._ledger

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            from connector.crypto import Vault

            self._vault = Vault(self.settings.fernet_keys)
        return self._vault

    @property
    def services(self) -> Services:
        if self._services is None:
            from connector.services.context import build_services

            self._services = build_services(self.settings, ledger=self.ledger, vault=self.vault)
        return self._services

    @property
    def actor(self) -> str:
        """Who ran the command, as the audit records it."""
        return f"cli:{getpass.getuser()}"

    def send_now(self, messages: list[Any], *, here: bool = False) -> str:
        """Send follow-up work to the workers now, or, with no broker configured (or `here`), run it in
        this process; returns what happened, for the operator."""
        import os

        from connector.services.sync_now import run_here, send_through_broker

        if not messages:
            return "nothing to send"
        if here or not os.environ.get("CONNECTOR_BROKER_URL"):
            done = run_here(self.services, messages)
            return "done here: " + (", ".join(f"{n} {what}" for what, n in sorted(done.items())) or "nothing new")
        from workers.app import create_app
        from workers.runtime import send

        # An app of this run's own settings: one made earlier in the process may name another broker.
        app = create_app(self.services.settings)
        try:
            send_through_broker(self.services, messages, lambda message: send(app, message))
        finally:
            app.close()
        return f"{len(messages)} message(s) sent to the workers"

    def send_reopened(self, tenant_ids: Iterable[str]) -> str:
        """Send the bills an operator's change re-opened in these tenants to be mapped and batched now (one
        send for all of them; see `send_now`)."""
        from connector.services.sync_now import reopened_work

        return self.send_now([m for tenant_id in tenant_ids for m in reopened_work(self.services, tenant_id)])

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def current() -> CliContext:
    """The run's context (the root group made it)."""
    context = click.get_current_context().find_object(CliContext)
    if context is None:  # a command invoked on its own, as some tests do
        context = CliContext()
        root = click.get_current_context().find_root()
        root.obj = context
        root.call_on_close(context.close)
    return context


pass_context = click.make_pass_decorator(CliContext, ensure=True)


class TenantId(click.ParamType[str]):
    """A tenant id the ledger holds: checked once, where the option is read, so every command refuses an
    unknown tenant the same way (exit 2, "no such tenant: ID") before it does anything."""

    name = "TENANT_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from connector.store.tenants import NoSuchTenant, require_tenants

        tenant_id = str(value)
        try:
            with current().ledger.transaction() as session:
                require_tenants(session, [tenant_id])
        except NoSuchTenant as unknown:
            self.fail(str(unknown), param, ctx)
        return tenant_id


TENANT = TenantId()


def tenant_selection(command: F) -> F:
    """`--tenant ID` (repeatable), `--all-tenants`, `--grant N` (repeatable): the tenants a changing command
    acts on, resolved (and checked once) by `selected_tenants`."""
    command = click.option("--grant", "grant_ids", type=int, multiple=True, metavar="N",
                           help="every tenant syncing with this grant (repeatable)")(command)
    command = click.option("--all-tenants", is_flag=True, help="every tenant the ledger holds")(command)
    return click.option("--tenant", "tenant_ids", multiple=True, metavar="TENANT_ID",
                        help="a tenant (repeatable)")(command)


def selected_tenants(tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...], *,
                     required: bool = True) -> list[str]:
    """The selection's tenants, each once; an unknown tenant or grant refuses it all (exit 2) before
    anything is done, and so does a selection that names nothing (unless not `required`: then it is [])
    or finds no tenant."""
    from connector.errors import NotFound
    from connector.store.tenants import select_tenant_ids

    if not (tenant_ids or all_tenants or grant_ids):
        if not required:
            return []
        raise click.UsageError("say which tenants: TENANT_ID, --tenant ID (repeatable), --all-tenants or --grant N")
    with current().ledger.transaction() as session:
        chosen = select_tenant_ids(session, tenant_ids, all_tenants=all_tenants, grant_ids=grant_ids)
    if not chosen:
        raise NotFound("no tenant selected: the ledger holds none" if all_tenants else
                       f"no tenant syncs with grant {', '.join(map(str, grant_ids))}")
    return chosen


def active_among(chosen: list[str], named: tuple[str, ...], doing: str) -> list[str]:
    """The ACTIVE tenants of a selection, for a command that calls Xero for them (a poll, a reconcile): a
    tenant named that is not ACTIVE refuses the command (exit 4, nothing done); one reached by
    --all-tenants or --grant is skipped, and said so."""
    from connector.domain.tenants import TenantStatus
    from connector.errors import ActionRefused
    from connector.store.tenants import tenant_statuses

    with current().ledger.transaction() as session:
        statuses = tenant_statuses(session, chosen)
    stopped = {tenant_id: s for tenant_id, s in statuses.items() if s != TenantStatus.ACTIVE}
    if refused := [tenant_id for tenant_id in dict.fromkeys(named) if tenant_id in stopped]:
        raise ActionRefused(f"not {doing}, nothing done: " + "; ".join(
            f"tenant {t} is {stopped[t]} (make it ACTIVE first with `connector tenants set {t} --status ACTIVE`)"
            for t in refused))
    for tenant_id in chosen:
        if tenant_id in stopped:
            click.echo(f"tenant {tenant_id}: {stopped[tenant_id]}, not {doing}", err=True)  # --json stays whole
    return [tenant_id for tenant_id in chosen if tenant_id not in stopped]


def json_option(command: F) -> F:
    """`--json`: one JSON document on standard output instead of the lines meant for people."""
    return click.option("--json", "as_json", is_flag=True, help="print one JSON document (for scripts)")(command)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str, sort_keys=False))


def emit(as_json: bool, document: Any, lines: Iterable[str]) -> None:
    """Print `document` as JSON, or the human lines."""
    if as_json:
        print_json(document)
        return
    for line in lines:
        click.echo(line)
