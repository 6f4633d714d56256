"""SFTP targets: added with their credentials encrypted, and re-encrypted by key rotation.

The rewrite is conditional on the ciphertexts read, so credentials an operator changed meanwhile are never
overwritten by the re-encrypted old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from connector.store.models import SftpTargetRow


@dataclass(frozen=True)
class SftpCiphertexts:
    target_id: int
    password: bytes | None
    private_key: bytes | None


def add_sftp_target(
    session: Session, *, host: str, port: int, username: str, import_dir: str, host_key: str,
    password_enc: bytes | None, private_key_enc: bytes | None,
) -> int:
    """A new target; its credentials arrive already encrypted."""
    row = SftpTargetRow(host=host, port=port, username=username, import_dir=import_dir, host_key=host_key,
                        password_enc=password_enc, private_key_enc=private_key_enc)
    session.add(row)
    session.flush()
    return row.id


def all_sftp_target_ids(session: Session) -> list[int]:
    return list(session.scalars(select(SftpTargetRow.id).order_by(SftpTargetRow.id)))


def read_sftp_ciphertexts(session: Session, target_id: int) -> SftpCiphertexts | None:
    row = session.get(SftpTargetRow, target_id)
    return None if row is None else SftpCiphertexts(row.id, row.password_enc, row.private_key_enc)


def replace_sftp_ciphertexts(session: Session, read: SftpCiphertexts, rotated: SftpCiphertexts) -> bool:
    """Write re-encrypted values only over exactly the ciphertexts that were read."""
    result = session.execute(
        update(SftpTargetRow)
        .where(SftpTargetRow.id == read.target_id, _holds(SftpTargetRow.password_enc, read.password),
               _holds(SftpTargetRow.private_key_enc, read.private_key))
        .values(password_enc=rotated.password, private_key_enc=rotated.private_key)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def _holds(column: InstrumentedAttribute[bytes | None], value: bytes | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value
