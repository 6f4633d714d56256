"""When a poll reads supplier credit notes (connector.domain.credit_note_cadence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.domain.credit_note_cadence import credit_allocation_moved, credit_notes_due

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HOUR = 3600.0


def test_never_read_is_due_and_a_recent_read_is_not() -> None:
    assert credit_notes_due(None, None, NOW, HOUR)
    assert not credit_notes_due(NOW - timedelta(minutes=59), None, NOW, HOUR)
    assert credit_notes_due(NOW - timedelta(minutes=60), None, NOW, HOUR)


def test_a_webhook_ask_after_the_last_read_began_makes_them_due() -> None:
    began = NOW - timedelta(minutes=5)
    assert credit_notes_due(began, began + timedelta(seconds=1), NOW, HOUR)
    assert credit_notes_due(began, began, NOW, HOUR)  # an ask at the read's very start may have missed it
    assert not credit_notes_due(began, began - timedelta(seconds=1), NOW, HOUR)


def test_a_bill_whose_amount_credited_moved_shows_a_new_allocation() -> None:
    assert credit_allocation_moved({"AmountCredited": 25.5}, {"AmountCredited": 0})
    assert credit_allocation_moved({"AmountCredited": "25.50"}, None)
    assert not credit_allocation_moved({"AmountCredited": 25.5}, {"AmountCredited": "25.50"})
    assert not credit_allocation_moved({"AmountCredited": 0}, None)
    assert not credit_allocation_moved({}, {"AmountCredited": None})
    assert not credit_allocation_moved({"AmountCredited": "n/a"}, {})


def test_the_cadence_falls_on_the_poll_nearest_it_not_the_first_after_it() -> None:
    """Polls every 15 minutes start a little either side of their slot: the read an hour on is not put
    off to the poll after (an hour and a quarter) because this one started half a minute early."""
    quarter = 900.0
    assert credit_notes_due(NOW - timedelta(minutes=59, seconds=30), None, NOW, HOUR, quarter)
    assert not credit_notes_due(NOW - timedelta(minutes=52), None, NOW, HOUR, quarter)
