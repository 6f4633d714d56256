"""The layers hold: the ledger is reached only through `connector/store/`, and the domain does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "workers", "beat")
STORE = REPO / "connector" / "store"
DOMAIN = REPO / "connector" / "domain"
#: What a pure domain module may never import: anything that reaches a disk, a network or a process.
DOMAIN_FORBIDDEN = ("sqlalchemy", "redis", "requests", "paramiko", "fabric", "celery", "kombu", "connector.store",
                    "connector.services", "connector.xero", "connector.sftp", "os", "socket", "subprocess")
PURE_HELPERS = ("connector.xero.dates",)  # Xero's date formats, parsed without I/O


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def test_sqlalchemy_is_imported_only_inside_the_store() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in python_files(*(REPO / package for package in PACKAGES))
        if not path.is_relative_to(STORE)
        and any(module == "sqlalchemy" or module.startswith("sqlalchemy.") for module in imported_modules(path))
    ]
    assert offenders == [], f"ORM statements belong in connector/store/ repository modules: {offenders}"


def test_the_domain_does_no_io() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if m not in PURE_HELPERS
                                            and any(m == bad or m.startswith(bad + ".") for bad in DOMAIN_FORBIDDEN))
        for path in python_files(DOMAIN)
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_this_check_sees_an_import_when_there_is_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from sqlalchemy import select\nimport redis.client\nfrom . import sibling\n")
    assert imported_modules(sample) == {"sqlalchemy", "redis.client"}


def test_the_product_loads_the_bundled_simulators_only_for_the_commands_that_run_them() -> None:
    """Workers, beat and the services never import the sandbox: a production worker runs without it."""
    launcher = REPO / "connector" / "cli" / "demo.py"
    offenders = [
        str(path.relative_to(REPO))
        for path in python_files(*(REPO / package for package in PACKAGES))
        if path != launcher
        and any(module == "sandbox" or module.startswith("sandbox.") for module in imported_modules(path))
    ]
    assert offenders == [], f"only `connector demo` and `connector sandbox` load the simulators: {offenders}"
