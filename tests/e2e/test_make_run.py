"""`make run`'s job (`connector demo`) on the embedded default: file broker, SQLite, bundled servers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_the_demo_delivers_files_and_prints_a_summary_with_their_paths(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector", "demo", "--bills", "30", "--timeout", "150"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    seen = re.search(r"Bills seen: (\d+)\s+delivered: (\d+)\s+held: (\d+)\s+excluded: (\d+)", output)
    assert seen, output
    bills, delivered, held, excluded = map(int, seen.groups())
    assert delivered > 0
    assert bills == delivered + held + excluded
    paths = re.findall(r"^\s+(/\S+\.csv)\s", output, flags=re.MULTILINE)
    assert paths, output
    for path in paths:
        assert Path(path).is_file()
        assert Path(path).is_relative_to(tmp_path)
    assert "Held (needs a person):" in output
    listed = re.findall(r"^\s+/\S+\.csv\s+\(\d+ (\w+?)(?: records)?, DELIVERED\)", output, flags=re.MULTILINE)
    assert listed[:4] == ["vendors", "gl_accounts", "dimensions", "purchase_orders"], output  # before the bills
    assert set(listed[4:]) == {"bills", "purchase_orders"}, output  # the added bill comes with a fresh PO
    assert listed[-1] == "bills", output  # ... sent before that bill
    woke = re.search(r"a webhook woke the poll: the new bill was (delivered|held|excluded) ([\d.]+) s after", output)
    assert woke, output
    assert float(woke.group(2)) < 15, "the tenant's regular poll is 15 minutes away: only the webhook explains it"
