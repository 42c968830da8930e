"""A promise the README's Development section makes about the tests themselves: a test waits
for a condition by polling, never by a fixed sleep in its body. (The other, that every test
reaching PostgreSQL carries the ``postgres`` marker, is held by the ``postgres_url`` fixture.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).parents[1]
SLEEPS = {("time", "sleep"), ("asyncio", "sleep")}


def _straight_line(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes a test runs once, in order: not inside a loop (a poll) or a nested
    function (a fake's behaviour, a thread's work)."""
    for statement in body:
        if isinstance(statement, ast.For | ast.AsyncFor | ast.While):
            continue
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        stack: list[ast.AST] = [statement]
        while stack:
            node = stack.pop()
            yield node
            for child in ast.iter_child_nodes(node):
                if not isinstance(
                    child,
                    ast.For
                    | ast.AsyncFor
                    | ast.While
                    | ast.FunctionDef
                    | ast.AsyncFunctionDef
                    | ast.Lambda
                    | ast.ClassDef,
                ):
                    stack.append(child)


def _fixed_sleeps(path: Path, root: Path = TESTS) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not function.name.startswith("test_"):
            continue
        for node in _straight_line(function.body):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id, node.func.attr) in SLEEPS
                and not (
                    node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0
                )
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno} in {function.name}")
    return found


def test_no_test_sleeps_a_fixed_time_in_its_body() -> None:
    found = [hit for path in sorted(TESTS.rglob("test_*.py")) for hit in _fixed_sleeps(path)]
    assert found == [], "poll for the condition instead (a loop with a deadline):\n" + "\n".join(
        found
    )


def test_the_check_finds_a_sleep_in_a_test_body_and_not_in_a_poll(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import asyncio, time\n"
        "def test_waits():\n"
        "    time.sleep(1.0)\n"
        "    while not done():\n"
        "        time.sleep(0.1)\n"
        "    def fake():\n"
        "        time.sleep(0.5)\n"
        "async def test_turns():\n"
        "    await asyncio.sleep(0)\n"
        "    await asyncio.sleep(0.01)\n"
    )
    hits = [hit.rsplit(":", 1)[1] for hit in _fixed_sleeps(sample, tmp_path)]
    assert hits == ["3 in test_waits", "10 in test_turns"]
