"""Finding PO numbers in a bill's reference: real spellings match, look-alikes never do."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.domain.po_numbers import find_po_keys, po_key


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        pytest.param("PO-0001", ["1"], id="exact"),
        pytest.param("po 0001", ["1"], id="lower-case-with-space"),
        pytest.param("P.O. 0001", ["1"], id="dotted"),
        pytest.param("PO0001 / delivery 2", ["1"], id="glued-with-suffix"),
        pytest.param("Ref: PO-0001 ", ["1"], id="prefixed-and-padded"),
        pytest.param("PO-0001, PO-0002", ["1", "2"], id="two-pos"),
        pytest.param("PO#17", ["17"], id="hash"),
        pytest.param("POS-2231", [], id="trap-pos"),
        pytest.param("PO Box 12", [], id="trap-po-box"),
        pytest.param("INV-4471", [], id="no-po"),
        pytest.param("", [], id="empty"),
        pytest.param("EXPO 2026", [], id="po-inside-a-word"),
        pytest.param("PO No. 1234", ["1234"], id="po-no"),
        pytest.param("PO Number 1234", ["1234"], id="po-number"),
        pytest.param("PO#: 1234", ["1234"], id="hash-colon"),
        pytest.param("P/O 1234", ["1234"], id="slashed"),
        pytest.param("PO–1234", ["1234"], id="en-dash"),
        pytest.param("PO-2024-0017", ["2024-17"], id="two-digit-groups"),
        pytest.param("PONumber", [], id="label-without-a-number"),
    ],
)
def test_recognises_real_spellings_and_refuses_look_alikes(reference: str, expected: list[str]) -> None:
    assert find_po_keys(reference) == expected


def test_a_purchase_order_number_and_its_variants_share_one_key() -> None:
    assert po_key("PO-0001") == po_key("po 1") == "1"


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["PO-", "po ", "P.O. ", "PO", "PO# "]))
def test_any_spelling_of_a_number_yields_that_number(number: int, prefix: str) -> None:
    assert find_po_keys(f"{prefix}{number:04d}") == [str(number)]


@given(st.text())
def test_never_raises_on_any_text(text: str) -> None:
    find_po_keys(text)
