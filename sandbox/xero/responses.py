"""Xero-shaped answers: the JSON envelope and each error body Xero is known to send.

Bodies are always JSON (or plain text where Xero sends plain text), whatever the Accept header says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Response

from sandbox.xero import msdate

JSON = "application/json; charset=utf-8"
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Response(text, status=status, content_type=JSON, headers=dict(headers or {}))


def envelope(collection: str, items: Iterable[str], *, now: datetime, provider: str,
             pagination: Mapping[str, int] | None = None) -> str:
    """The list envelope, assembled from already-encoded records."""
    head: dict[str, Any] = {"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": provider,
            "DateTimeUTC": msdate.envelope_field(now)}
    if pagination is not None:
        head["pagination"] = dict(pagination)
    prefix = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
    return f'{prefix},"{collection}":[{",".join(items)}]}}'


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """The problem-details body Xero's gateway sends for 401 and 403."""
    body: dict[str, Any] = {"Type": None, "Title": title, "Status": status, "Detail": detail,
                            "Instance": str(uuid.uuid4()), "Extensions": {}}
    return json_response(body, status, headers)


def unauthorized(detail: str, error_description: str | None = None) -> Response:
    challenge = 'Bearer error="invalid_token"'
    if error_description:
        challenge += f', error_description="{error_description}"'
    return problem(401, "Unauthorized", detail, {"WWW-Authenticate": challenge})


def forbidden() -> Response:
    return problem(403, "Forbidden", "AuthenticationUnsuccessful")


def not_found() -> Response:
    return Response(NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")


def query_parse_error(message: str) -> Response:
    return json_response({"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}, 400)


def validation_error(message: str) -> Response:
    """Xero's ValidationException shape (spec schema `Error`), for bad parameters."""
    body = {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
            "Elements": [{"ValidationErrors": [{"Message": message}]}]}
    return json_response(body, 400)


def oauth_error(error: str, description: str | None = None, status: int = 400) -> Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return json_response(body, status)
