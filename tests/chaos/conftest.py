"""Fixtures for the chaos proof: the real sshd fixtures, as the end-to-end tests use them."""

from tests.support.sftp_fixtures import *  # noqa: F403
