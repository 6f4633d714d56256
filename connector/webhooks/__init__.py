"""The Xero webhook receiver: a small WSGI app that checks signatures, keeps an inbox and wakes polls."""

from connector.webhooks.receiver import WEBHOOK_PATH, Receiver

__all__ = ["WEBHOOK_PATH", "Receiver"]
