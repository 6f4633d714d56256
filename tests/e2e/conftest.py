"""Fixtures for end-to-end tests."""

from tests.support.services import services_on_postgres  # noqa: F401  (the `services` fixture)
from tests.support.sftp_fixtures import *  # noqa: F403
