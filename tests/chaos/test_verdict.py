"""The chaos verdict can fail: it sees a file uploaded twice, a bill never sent, a FAILED file that asked
a person without cause, and a held bill that was sent; and it excuses only what the evidence could not
decide. (A harness that passes whatever happens proves nothing.)"""

from __future__ import annotations

from pathlib import Path

from connector.domain.states import BatchState, BillState
from tests.support.chaos import LedgerView, StampliImporter, invoice_id_column, judge

HEADER = f"{invoice_id_column()},InvoiceNumber,LineNumber\r\n"


def a_file(folder: Path, name: str, *invoice_ids: str) -> Path:
    path = folder / name
    lines = "".join(f"{i},N-{i},{n}\r\n" for i in invoice_ids for n in (1, 2))  # a bill's lines repeat its id
    path.write_text(HEADER + lines, encoding="utf-8")
    return path


def ledger(bills: dict[str, tuple[str, int | None]], batches: dict[int, tuple[str, str | None]]) -> LedgerView:
    reasons: list[object] = [{"code": "no_po"}]
    return LedgerView(
        {i: (state, reasons if state in (BillState.HELD, BillState.EXCLUDED) else [], batch, 1)
         for i, (state, batch) in bills.items()},
        {b: (f"file-{b}.csv", state, error) for b, (state, error) in batches.items()},
    )


def test_every_bill_once_in_the_taken_files_passes(tmp_path: Path) -> None:
    view = ledger({"A": (BillState.DELIVERED, 1), "B": (BillState.DELIVERED, 1), "H": (BillState.HELD, None)},
                  {1: (BatchState.DELIVERED, None)})
    verdict = judge(view, {"A", "B", "H"}, [a_file(tmp_path, "f1.csv", "A", "B")], [])
    assert verdict.problems == []
    assert (verdict.eligible, verdict.delivered_once, verdict.held) == (2, 2, 1)


def test_a_file_uploaded_twice_is_a_duplicate(tmp_path: Path) -> None:
    view = ledger({"A": (BillState.DELIVERED, 1)}, {1: (BatchState.DELIVERED, None)})
    taken = [a_file(tmp_path, "f1.csv", "A"), a_file(tmp_path, "f1.csv.again2", "A")]
    verdict = judge(view, {"A"}, taken, ["f1.csv"])
    assert verdict.duplicates == {"A": 2}
    assert any("more than once" in p for p in verdict.problems)
    assert any("arrived twice" in p for p in verdict.problems)


def test_an_eligible_bill_in_no_file_is_missing_even_if_the_ledger_says_delivered(tmp_path: Path) -> None:
    view = ledger({"A": (BillState.DELIVERED, 1), "B": (BillState.DELIVERED, 1)}, {1: (BatchState.DELIVERED, None)})
    verdict = judge(view, {"A", "B", "C"}, [a_file(tmp_path, "f1.csv", "A")], [])
    assert verdict.missing == ["B"]
    assert verdict.never_discovered == ["C"]


def test_a_failed_file_that_asks_a_person_without_cause_fails_the_run(tmp_path: Path) -> None:
    reason = "OutcomeUnknown: Stampli may already have taken it. Check Stampli, then replay if it is missing"
    view = ledger({"A": (BillState.FAILED, 1)}, {1: (BatchState.FAILED, reason)})
    verdict = judge(view, {"A"}, [a_file(tmp_path, "f1.csv", "A")], [])
    assert verdict.failed_batches == [("file-1.csv", reason)]
    assert verdict.ledger_disagrees == ["A"]


def test_a_failed_file_whose_evidence_could_not_decide_is_excused(tmp_path: Path) -> None:
    reason = "the evidence cannot decide whether the rename happened: check Stampli"
    view = ledger({"A": (BillState.FAILED, 1)}, {1: (BatchState.FAILED, reason)})
    assert judge(view, {"A"}, [], []).problems == []


def test_a_held_bill_that_was_sent_fails_the_run(tmp_path: Path) -> None:
    view = ledger({"H": (BillState.HELD, None)}, {})
    assert judge(view, {"H"}, [a_file(tmp_path, "f1.csv", "H")], []).sent_though_held == ["H"]


def test_the_importer_keeps_a_name_that_arrives_twice(tmp_path: Path) -> None:
    inbox, taken = tmp_path / "import", tmp_path / "taken"
    inbox.mkdir()
    importer = StampliImporter(inbox, taken, seed=1)
    for _ in range(2):
        a_file(inbox, "f1.csv", "A")
        (inbox / "f2.csv.part").write_text("half")
        importer.take_due(everything=True)
    assert sorted(p.name for p in taken.iterdir()) == ["f1.csv", "f1.csv.again2"]
    assert importer.names_twice == ["f1.csv"]
    assert (inbox / "f2.csv.part").exists()  # never a file still being written


def a_vendor_file(folder: Path, name: str, *vendors: str) -> Path:
    path = folder / name
    path.write_text("XeroVendorID,VendorName\r\n" + "".join(f"{v},Name {v}\r\n" for v in vendors), encoding="utf-8")
    return path


def with_master_data(view: LedgerView, *, vendor_batch: int, vendor_at: int, bill_at: int) -> LedgerView:
    from datetime import UTC, datetime

    def at(second: int) -> datetime:
        return datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)

    view.batches[vendor_batch] = (f"file-{vendor_batch}.csv", BatchState.DELIVERED, None)
    view.master = {("vendors", "V1"): vendor_batch}
    view.batch_kinds = {1: ("bills", at(bill_at)), vendor_batch: ("vendors", at(vendor_at))}
    view.bill_vendors = {"A": "V1"}
    return view


def test_master_data_rows_once_and_ahead_of_their_bills_pass(tmp_path: Path) -> None:
    view = with_master_data(ledger({"A": (BillState.DELIVERED, 1)}, {1: (BatchState.DELIVERED, None)}),
                            vendor_batch=9, vendor_at=1, bill_at=2)
    taken = [a_vendor_file(tmp_path, "file-9.csv", "V1"), a_file(tmp_path, "file-1.csv", "A")]
    verdict = judge(view, {"A"}, taken, [])
    assert verdict.problems == []
    assert verdict.records_sent == 1


def test_a_master_data_row_taken_twice_or_a_bill_ahead_of_its_vendor_fails(tmp_path: Path) -> None:
    view = with_master_data(ledger({"A": (BillState.DELIVERED, 1)}, {1: (BatchState.DELIVERED, None)}),
                            vendor_batch=9, vendor_at=3, bill_at=2)
    again = tmp_path / "again"
    again.mkdir()
    taken = [a_vendor_file(tmp_path, "file-9.csv", "V1"), a_vendor_file(again, "file-10.csv", "V1"),
             a_file(tmp_path, "file-1.csv", "A")]
    verdict = judge(view, {"A"}, taken, [])
    assert verdict.record_duplicates == {"vendors V1": 2}
    assert verdict.bills_ahead_of_vendor == ["A"]
    missing = judge(view, {"A"}, [a_file(tmp_path, "file-1.csv", "A")], [])
    assert missing.records_missing == ["vendors V1"]
