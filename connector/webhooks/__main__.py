"""`python -m connector.webhooks serve ...`: the same command as `connector webhooks serve`."""

from connector.cli.webhooks import webhooks

webhooks()
