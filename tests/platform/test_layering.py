"""Dependencies point down (DESIGN.md, "Which app may import which"): accounts is below the
domain apps and imports none of them, not even inside a function; what it needs of them
(erasure, the personal-data export, closing sockets) is wired at the composition root."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABOVE_ACCOUNTS = {"doctors", "bookings", "chat", "records", "realtime", "payments", "telemed"}


def imported(path: Path) -> list[tuple[int, str]]:
    """Every absolute module ``path`` imports, wherever the import statement is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_accounts_imports_no_app_above_it():
    files = sorted((ROOT / "accounts").rglob("*.py"))
    assert len(files) > 10
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in imported(path)
        if module.split(".")[0] in ABOVE_ACCOUNTS
    ]
    assert wrong == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bookings.models import Review\n    import chat.models\n")
    assert imported(module) == [(2, "bookings.models"), (3, "chat.models")]
