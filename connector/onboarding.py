"""Writing tenants, grants, mappings and SFTP targets into the ledger, secrets encrypted on the way in."""

from __future__ import annotations

from connector.crypto import Vault
from connector.secret import Secret
from connector.store import grants, sftp_targets, tenants
from connector.store.db import Ledger


def add_grant(
    ledger: Ledger, vault: Vault, *, client_id: str, client_secret: Secret, refresh_token: Secret | None,
    kind: str = "authorization_code",
) -> int:
    with ledger.transaction() as session:
        return grants.add_grant(
            session, kind=kind, client_id=client_id, client_secret_enc=vault.encrypt(client_secret.reveal()),
            refresh_token_enc=vault.encrypt(refresh_token.reveal()) if refresh_token else None,
        )


def add_sftp_target(
    ledger: Ledger, vault: Vault, *, host: str, port: int, username: str, import_dir: str, host_key: str,
    password: Secret | None = None, private_key: Secret | None = None,
) -> int:
    with ledger.transaction() as session:
        return sftp_targets.add_sftp_target(
            session, host=host, port=port, username=username, import_dir=import_dir, host_key=host_key,
            password_enc=vault.encrypt(password.reveal()) if password else None,
            private_key_enc=vault.encrypt(private_key.reveal()) if private_key else None,
        )


def add_tenant(
    ledger: Ledger, *, tenant_id: str, name: str, short_name: str, grant_id: int, sftp_target_id: int | None,
    poll_interval_seconds: int = 900, max_bills_per_file: int = 500,
) -> None:
    with ledger.transaction() as session:
        tenants.add_tenant(
            session, tenant_id=tenant_id, name=name, short_name=short_name, grant_id=grant_id,
            sftp_target_id=sftp_target_id, poll_interval_seconds=poll_interval_seconds,
            max_bills_per_file=max_bills_per_file,
        )
