"""The tests of ``examples/testing/`` (one per front-end, shown in the docs) pass when pytest
runs them as a user's project would, and the docs show those files exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_runs import run_pytest

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "testing"
DOCS = ROOT / "README.md"
TESTS = sorted(p.name for p in EXAMPLES.glob("test_*.py"))
# A file embedded in the docs: a marker line, then a fenced block with the file's whole text.
EMBEDDED = re.compile(r"<!-- file: (?P<path>\S+) -->\n```[a-z]*\n(?P<body>.*?)```\n", re.DOTALL)


def test_there_is_an_example_test_per_front_end() -> None:
    assert TESTS == ["test_aiogram_bot.py", "test_native_bot.py", "test_ptb_bot.py"]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TESTS)
def test_the_example_passes(name: str) -> None:
    result = run_pytest(EXAMPLES / name, cwd=EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed\b", result.stdout), result.stdout
    assert not re.search(r"\b(failed|error|skipped|warning)", result.stdout), result.stdout


def test_the_docs_embed_each_example_file_exactly() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    embedded = {m["path"]: m["body"] for m in EMBEDDED.finditer(docs)}
    wanted = {
        f"examples/testing/{p.name}": p.read_text(encoding="utf-8")
        for p in sorted(EXAMPLES.iterdir())
        if p.suffix in (".py", ".ini")
    }
    assert sorted(embedded) == sorted(wanted), "every example file is embedded, once"
    for path, body in wanted.items():
        assert embedded[path] == body, f"{DOCS.name} shows {path} other than it is"
