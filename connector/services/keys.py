"""Key rotation: re-encrypt every stored secret under the newest Fernet key."""

from __future__ import annotations

from sqlalchemy import select

from connector.services.context import Services
from connector.store.models import SftpTargetRow, XeroGrant

ENCRYPTED_COLUMNS = {
    XeroGrant: ("client_secret_enc", "refresh_token_enc", "access_token_enc"),
    SftpTargetRow: ("password_enc", "private_key_enc"),
}


def rotate_keys(services: Services) -> int:
    """Returns how many values were rewritten; old keys can be dropped once this has run."""
    rewritten = 0
    with services.ledger.transaction() as session:
        for model, columns in ENCRYPTED_COLUMNS.items():
            for row in session.scalars(select(model)):
                for column in columns:
                    value = getattr(row, column)
                    if value:
                        setattr(row, column, services.vault.rotate(value))
                        rewritten += 1
    return rewritten
