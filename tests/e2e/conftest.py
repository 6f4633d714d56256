"""Fixtures for end-to-end tests."""

from tests.support.sftp_fixtures import *  # noqa: F403
