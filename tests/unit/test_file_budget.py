"""Where a file carrying documents closes: before the bill whose documents would take the file past the
byte budget, never before its first bill (a bill too big for any file goes alone)."""

from __future__ import annotations

from connector.domain.attachments import bills_within_budget


def test_every_bill_fits_when_the_documents_stay_under_the_budget() -> None:
    assert bills_within_budget([10, 20, 0, 30], budget=60) == 4


def test_the_file_closes_before_the_bill_that_would_pass_the_budget() -> None:
    assert bills_within_budget([10, 20, 40, 5], budget=60) == 2


def test_bills_without_documents_cost_nothing_and_follow_until_a_document_passes_the_budget() -> None:
    assert bills_within_budget([60, 0, 0, 1], budget=60) == 3


def test_a_bill_over_the_budget_alone_goes_alone() -> None:
    assert bills_within_budget([100, 1], budget=60) == 1
    assert bills_within_budget([1, 100], budget=60) == 1


def test_no_bills_make_no_file() -> None:
    assert bills_within_budget([], budget=60) == 0
