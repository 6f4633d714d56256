"""oauthlib refuses plain-http token URLs; the bundled sandbox on loopback is the one place we allow it."""

from __future__ import annotations

import os
from urllib.parse import urlparse

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def permit_loopback_http(url: str) -> None:
    """Allow http:// for a loopback identity URL (the sandbox); anything else must be https.

    A deployment that points at a sandbox on another host sets OAUTHLIB_INSECURE_TRANSPORT=1 itself.
    """
    parsed = urlparse(url)
    if parsed.scheme == "http" and parsed.hostname in LOOPBACK:
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
