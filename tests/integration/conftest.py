"""Fixtures for integration tests; each family lives in tests/support and is imported here."""

from tests.support.sftp_fixtures import *  # noqa: F403
