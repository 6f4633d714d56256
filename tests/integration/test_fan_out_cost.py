"""A first poll sends one map message per bill of its tenant, so what one send costs is paid 10,000 times
in the poll of a 10,000-bill first sync. A send puts the message on its queue and nothing else: no
`task-sent` event beside it (the workers' own task events, which Flower shows, are still sent). The event
was a second publish per message, as costly in the poll's process as the message itself: 1.15 to 1.2 ms
of CPU a send with it, 0.6 to 0.8 ms without."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from connector.crypto import Vault
from connector.services.messages import MapInvoice


def test_a_map_message_is_one_publish_on_the_map_queue_and_no_event(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
                        "CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_BROKER_URL": redis_url,
                        "CONNECTOR_STAGING_DIR": str(tmp_path / "staging")}.items():
        monkeypatch.setenv(name, value)
    from workers.app import create_app  # the workers' module makes its app from the environment when imported
    from workers.runtime import send

    app = create_app()
    client = redis.Redis.from_url(redis_url)
    listening = client.pubsub()
    database = client.connection_pool.connection_kwargs.get("db", 0)
    listening.psubscribe(f"/{database}.*")  # events go by pub/sub, which every database shares: this one's
    assert listening.get_message(timeout=1.0) is not None  # the subscription's own confirmation
    try:
        for n in range(3):
            send(app, MapInvoice("tenant", f"invoice-{n}", 1))
        assert client.llen("map") == 3
        heard = []
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            message = listening.get_message(timeout=0.1)
            if message is not None:
                heard.append(message["channel"])
        assert heard == [], "nothing published beside the messages"
    finally:
        listening.close()
        client.close()
        app.close()
