"""The public in-process runner for PTB: ``runner()`` gives a Runner for an Application (or a
factory) with the polling options applied, ``serve()`` runs it in the caller's event loop and
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processes import end_started_bots, start_python
from tgrunner.frontends.ptb import ALL_TYPES, runner
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def test_runner_runs_an_application_in_process(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import ptb_sample

    app = ptb_sample.build()
    bot = runner(app, token=tg.token, api_url=tg.api_url, timeout=1, settings=Settings())
    assert isinstance(bot, Runner)
    assert bot.settings.polling.timeout == 1
    assert bot.settings.polling.allowed_updates == ALL_TYPES
    task = asyncio.create_task(bot.serve(install_signals=False))
    alice = tg.user("Alice")
    alice.send("hello")
    [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == "hello"
    assert app.running
    bot.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert not app.running


async def test_runner_takes_a_factory_and_the_run_polling_options(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import ptb_sample

    alice = tg.user("Alice")
    alice.send("from before the start")
    bot = runner(
        ptb_sample.build,
        token=tg.token,
        api_url=tg.api_url,
        allowed_updates=["message"],
        drop_pending_updates=True,
        settings=Settings(),
    )
    assert bot.settings.polling.allowed_updates == ("message",)
    task = asyncio.create_task(bot.serve(install_signals=False))
    await tg.wait_until_polling(timeout=10)
    assert tg.pending_updates == 0  # the backlog was dropped, not handled
    alice.send("after")
    [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == "after"
    bot.stop()
    assert await asyncio.wait_for(task, 10) == 0


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_serve_runs_in_the_callers_loop_and_stops_on_sigterm(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("hello")
    code = (
        "import asyncio, ptb_sample\n"
        "from tgrunner.frontends.ptb import serve\n"
        f"raise SystemExit(asyncio.run(serve(ptb_sample.build, token={tg.token!r}, "
        f"api_url={tg.api_url!r}, timeout=30)))\n"
    )
    bot = await start_python(code, cwd=HERE)
    [reply] = await tg.wait_for_replies(alice, 1, timeout=30)
    assert reply["text"] == "hello"
    await tg.wait_until_polling(timeout=10)
    bot.send_signal(signal.SIGTERM)
    exit_code, err = await bot.finish(timeout=10)
    assert exit_code == 0, err
    assert "Traceback" not in err
