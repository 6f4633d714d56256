"""The scheduled token refresh: every grant's refresh token is kept alive, even while its tenants idle.

An unused Xero refresh token dies after 60 days; a tenant paused or parked for that long would come back
to a dead grant. So beat refreshes each active grant when its access token is near expiry (every 25
minutes at most), through the same single-refresher path the polls use.
"""

from __future__ import annotations

import logging

from connector.errors import XeroGrantRevoked, XeroUnavailable
from connector.services.context import Services
from connector.store.grants import refreshable_grant_ids

log = logging.getLogger(__name__)


def refresh_due_grants(services: Services) -> int:
    """Refresh the grants whose access token is due; returns how many were refreshed."""
    with services.ledger.transaction() as session:
        grant_ids = refreshable_grant_ids(session)
    refreshed = 0
    for grant_id in grant_ids:
        try:
            refreshed += services.tokens.refresh_if_due(grant_id)
        except XeroGrantRevoked:
            continue  # recorded and announced by the token keeper
        except XeroUnavailable as exc:
            log.warning("Xero grant %s: scheduled refresh failed (%s); the next tick tries again", grant_id, exc)
    return refreshed
