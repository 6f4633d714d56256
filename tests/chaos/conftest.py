"""Fixtures for the chaos proof: the real sshd fixtures, as the end-to-end tests use them."""

from tests.support.services import services_on_postgres  # noqa: F401  (the `services` fixture)
from tests.support.sftp_fixtures import *  # noqa: F403
