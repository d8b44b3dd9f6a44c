"""``--help`` of every command: a description, each option's default, the environment
variables it reads, and examples; no reStructuredText markup; only commands that exist. And
``tgrunner --version``."""

from __future__ import annotations

import argparse
import platform
import re
from pathlib import Path

import pytest

from cli_support import in_process, in_subprocess
from tgrunner import __version__
from tgrunner.cli import _COMMANDS, _parser
from tgrunner.cli.common import subcommands
from tgrunner.cli.options import FLAGS
from tgrunner.settings import ENV

COMMANDS = [[], ["run"], ["worker"], ["jobs"], ["jobs", "show"], ["jobs", "list"],
            ["jobs", "retry"], ["jobs", "cancel"], ["journal"], ["journal", "list"],
            ["journal", "retry"], ["journal", "drop"], ["broadcast"], ["broadcast", "status"],
            ["broadcast", "pause"], ["broadcast", "resume"], ["broadcast", "cancel"],
            ["set-webhook"], ["delete-webhook"],
            ["webhook-info"], ["doctor"], ["demo"], ["fake-telegram"]]  # fmt: skip

SRC = Path(__file__).parents[2] / "src" / "tgrunner"


def _help(capsys: pytest.CaptureFixture[str], words: list[str]) -> str:
    code, out, err = in_process(capsys, *words, "--help")
    assert (code, err) == (0, ""), words
    return out


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "tgrunner")
def test_every_command_has_a_whole_help(
    capsys: pytest.CaptureFixture[str], words: list[str]
) -> None:
    text = _help(capsys, words)
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: tgrunner {' '.join(words)}".rstrip()), text
    description = re.split(r"^(?:positional arguments|options):", rest, flags=re.MULTILINE)[0]
    assert len(description) > 60, f"no description: {text}"
    assert "environment" in text and "examples:" in text, text
    assert "TGRUNNER_LOG_LEVEL" in text, text
    assert "``" not in text and not re.search(r":(class|mod|func|meth|data):", text), text
    examples = text.partition("examples:")[2]
    for example in re.findall(r"^\s+(?:\S+=\S+ )?tgrunner .*$", examples, re.MULTILINE):
        command = example.split("tgrunner ", 1)[1].split()[0]
        assert command in _COMMANDS or command.startswith("-"), example


def test_every_option_states_its_default() -> None:
    parser = _parser(None)
    for each in (parser, *subcommands(parser)):
        for action in each._actions:
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            assert action.help and "default" in action.help, (each.prog, action.option_strings)


def test_every_setting_has_a_flag_and_its_variable_in_the_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert {f.env for f in FLAGS} == set(ENV)
    text = " ".join(_help(capsys, ["run"]).split())  # unwrapped
    for f in FLAGS:
        assert f"{f.flag}" in text and f"env {f.env}" in text, f.flag
    for flag in ("--allowed-updates", "--drop-pending-updates", "--poll-timeout",
                 "--max-pending", "--max-pending-per-key"):  # fmt: skip
        assert flag in text


def test_messages_name_only_commands_that_exist() -> None:
    """A quoted 'tgrunner X', or any 'tgrunner x-y' in the sources, is a real command."""
    named: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        named |= set(re.findall(r"'tgrunner ([a-z][\w-]*)", text))
        named |= set(re.findall(r"\btgrunner ([a-z]+-[a-z-]+)", text))
    assert named, "the scan found nothing: is the pattern still right?"
    assert named <= set(_COMMANDS), named - set(_COMMANDS)
    assert "webhook mode" not in (SRC / "sources" / "polling.py").read_text()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = in_process(capsys, "--version")
    assert (code, err) == (0, "")
    assert out == f"tgrunner {__version__} (Python {platform.python_version()})\n"
    assert out.startswith("tgrunner 0.1.0 ")


async def test_version_and_help_in_a_real_process() -> None:
    code, out, err = await in_subprocess("--version")
    assert (code, err) == (0, "") and out.startswith("tgrunner 0.1.0 (Python 3.")
    code, out, err = await in_subprocess("run", "--help")
    assert (code, err) == (0, "") and "TGRUNNER_CONCURRENCY" in out
