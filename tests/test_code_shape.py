"""The house rule ruff cannot check: no function in harness/ over 60 lines unless the comment right above it says
why (ruff's PLR0913, configured in pyproject.toml, keeps parameters at 6 or fewer the same way)."""

from __future__ import annotations

import ast

from conftest import PROJECT_DIR

MAX_LINES = 60


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function over MAX_LINES lines without a comment on the line above its def."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = lines[first - 2].strip() if first > 1 else ""
            if length > MAX_LINES and not above.startswith("#"):
                found.append((node.name, length))
    return found


def test_the_check_sees_a_long_function():
    body = "\n".join(f"    x = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def f():\n{body}\n") == [("f", MAX_LINES + 1)]
    assert long_functions(f"# Long: one table of cases.\ndef f():\n{body}\n") == []


def test_no_function_over_60_lines_without_a_reason():
    package = PROJECT_DIR / "harness"
    found = {
        f"{path.relative_to(PROJECT_DIR)}:{name}": length
        for path in sorted(package.rglob("*.py"))
        if "project" not in path.relative_to(package).parts and "models" not in path.relative_to(package).parts
        for name, length in long_functions(path.read_text())
    }
    assert not found, f"functions over {MAX_LINES} lines with no comment above saying why: {found}"
