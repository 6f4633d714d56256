"""SFTP delivery to Stampli's import folder: pinned host keys, checked sessions, commit-point uploads."""

from connector.sftp.connection import SftpSession, open_session
from connector.sftp.target import SftpTarget, fingerprint
from connector.sftp.upload import (
    Outcome,
    RemoteState,
    UploadOutcome,
    deliver,
    make_folders,
    remote_state,
    remove_part_files,
)

__all__ = [
    "Outcome",
    "RemoteState",
    "SftpSession",
    "SftpTarget",
    "UploadOutcome",
    "deliver",
    "fingerprint",
    "make_folders",
    "open_session",
    "remote_state",
    "remove_part_files",
]
