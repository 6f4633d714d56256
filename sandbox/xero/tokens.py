"""Token strings that look like Xero's: JWT access tokens, opaque refresh tokens, deterministic app ids.

Access tokens are real JWTs (HS256, signed with a per-sandbox key) carrying Xero's claims, so a client
that peeks at `exp` or `authentication_event_id` sees sensible values. The sandbox never trusts the
JWT itself: it looks tokens up in its own table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: dict[str, Any], key: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "kid": "xero-sandbox", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def read_claims(token: str) -> dict[str, Any]:
    """Decode a sandbox JWT's claims without checking anything (for tests and curious clients)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def opaque() -> str:
    """A refresh token or authorisation code: 64 hex characters, unguessable."""
    return secrets.token_hex(32)


def client_id_for(label: str) -> str:
    """A stable 32-character upper-case hex client id (Xero's form), derived from a label."""
    return hashlib.sha256(f"xero-sandbox/client-id/{label}".encode()).hexdigest()[:32].upper()


def client_secret_for(label: str) -> str:
    """A stable 48-character client secret derived from a label."""
    return _b64(hashlib.sha256(f"xero-sandbox/client-secret/{label}".encode()).digest())[:43] + "sbx01"


def s256(verifier: str) -> str:
    """PKCE S256 code challenge of a verifier."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())
