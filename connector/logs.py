"""Logging set-up for every process: one format, and the loggers that would print secrets held quiet.

oauthlib and requests-oauthlib log token request bodies (refresh tokens, client secrets) at DEBUG, and
paramiko's transport logs authentication detail; they stay at WARNING whatever the level asked for.
"""

from __future__ import annotations

import logging

LEAKY_LOGGERS = ("oauthlib", "requests_oauthlib", "paramiko", "asyncssh", "urllib3")
FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    quiet_leaky_loggers()


def quiet_leaky_loggers() -> None:
    for name in LEAKY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
