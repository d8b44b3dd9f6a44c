"""``examples/aiogram_jobs``: the bot imports, its tasks are found by their paths as a worker
finds them, the commands of its pod file are valid ``tgrunner`` command lines, and (a process
test against FakeTelegram) ``tgrunner run bot:dp --job-workers 1`` answers both commands."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from processes import end_started_bots, start_bot
from tgrunner.cli import _parser
from tgrunner.cli.options import settings_from
from tgrunner.jobs.task import Task, resolve_task
from tgrunner.testing import FakeTelegram

EXAMPLE = Path(__file__).parents[2] / "examples" / "aiogram_jobs"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.chdir(EXAMPLE)
    monkeypatch.setenv("WORK_SECONDS", "0.01")
    sys.modules.pop("bot", None)
    import bot

    yield bot
    sys.modules.pop("bot", None)


def test_the_example_imports_and_its_tasks_resolve_by_path(example: ModuleType) -> None:
    from aiogram import Dispatcher

    assert isinstance(example.dp, Dispatcher)
    for name in ("render", "count"):
        found = getattr(example, name)
        assert isinstance(found, Task) and found.path == f"bot:{name}"
        assert resolve_task(found.path) is found  # as a job worker imports it
    assert example.render.retries == 3 and example.render.timeout == 120
    assert example.count.context_parameter == "ctx" and example.count.is_async
    text = example.render("a <cat>")
    assert text.startswith("🖼 a &lt;cat&gt;\n") and len(text.splitlines()[1]) == 16


def _pod_commands() -> list[list[str]]:
    text = (EXAMPLE / "pod.yaml").read_text()
    return [json.loads(m) for m in re.findall(r"command: (\[.*?\])", text, re.DOTALL)]


def test_the_pod_runs_valid_tgrunner_commands_on_one_valkey() -> None:
    commands = _pod_commands()
    assert [c[:3] for c in commands] == [["tgrunner", "run", "bot:dp"],
                                         ["tgrunner", "worker", "bot"]]  # fmt: skip
    for command in commands:
        args = _parser(command[1]).parse_args(command[1:])
        assert args.jobs == "redis://127.0.0.1:6379/0"
        if command[1] == "run":
            settings = settings_from(args, env={})
            assert settings.jobs.url == args.jobs and settings.jobs.workers == 0
        else:
            assert (args.processes, args.concurrency, args.grace) == (2, 4, 30.0)
    pod = (EXAMPLE / "pod.yaml").read_text()
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", pod)[1])  # type: ignore[index]
    assert grace > 30, "the pod's stop waits longer than the workers' grace"
    assert "COPY bot.py" in (EXAMPLE / "Containerfile").read_text()


@pytest.fixture
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.usefixtures("_end_our_bots")
async def test_the_example_answers_with_its_jobs(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "bot:dp", "--job-workers", "1", cwd=EXAMPLE,
                          env={"WORK_SECONDS": "0.01"})  # fmt: skip
    user = tg.user("ann")
    asked = user.send("/render a cat")
    user.send("/count 2")

    def texts() -> list[str]:
        return [m.get("text", "") for m in tg.replies(user)]

    await tg.wait_for(lambda: any(t.startswith("🖼 a cat") for t in texts()), timeout=45)
    reply = next(r.params for r in tg.calls("sendMessage") if r.params["text"].startswith("🖼"))
    assert reply["reply_parameters"]["message_id"] == asked["message_id"]
    await tg.wait_for(
        lambda: any(r.params.get("text") == "✅ counted to 2" for r in tg.calls("editMessageText")),
        timeout=45,
    )
    edits = [r.params["text"] for r in tg.calls("editMessageText")]
    assert edits == ["⏳ 1/2", "⏳ 2/2", "✅ counted to 2"], edits
    await bot.stop()
