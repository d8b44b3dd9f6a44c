"""The target rules (:mod:`tgrunner.runtime.targets`), in-process: what is run, what is called,
what is refused and with which hint, ``factory=True``, and the user's tracebacks trimmed to
their own frames. The same through ``tgrunner run`` is in ``test_targets_cli.py``."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Dispatcher
from aiogram.types import Message
from runtime_support import FAST

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError, UserCodeError
from tgrunner.frontends.native.context import Context
from tgrunner.frontends.native.router import Router
from tgrunner.runtime.build import build_launcher, build_runner, frontend_for
from tgrunner.runtime.entry import EntryPoint
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"
SETTINGS = Settings(polling=FAST, grace=5.0)


@pytest.fixture
def in_bots(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run from tests/bots, as ``tgrunner run`` from the bot's folder (it imports from cwd)."""
    monkeypatch.chdir(BOTS)
    yield
    sys.path[:] = [p for p in sys.path if p != str(BOTS)]


def _load(target: Any, **kwargs: Any) -> Runner | EntryPoint:
    kwargs.setdefault("token", "1:abc")
    return build_launcher(target, settings=SETTINGS, **kwargs)


# -- what runs ---------------------------------------------------------------------------------


async def _native(update: dict[str, Any], bot: Bot) -> None:
    """A native handler, annotated."""


async def _unannotated(update, bot):  # type: ignore[no-untyped-def]
    """A native handler without annotations."""


async def _route(ctx: Context) -> None: ...


async def _ptb_style(update: Any, context: Any) -> None: ...


async def _aiogram_style(message: Message) -> None: ...


async def _aiogram_two(message: Any, bot: Any) -> None: ...


async def _with_state(event: Any, state: Any) -> None: ...


async def _middleware(ctx: Any, call_next: Any) -> None: ...


@pytest.mark.parametrize("handler", [_native, _unannotated])
def test_an_update_bot_coroutine_function_is_a_native_handler(handler: Any) -> None:
    assert frontend_for(handler).handler is handler
    assert isinstance(_load(handler), Runner)


@pytest.mark.parametrize(
    ("handler", "hint"),
    [
        (_route, "looks like a route handler (it takes (ctx)): point at the Router"),
        (_middleware, "looks like a route handler"),
        (_ptb_style, "looks like a python-telegram-bot handler (update, context)"),
        (_aiogram_style, "looks like an aiogram handler (it takes (message))"),
        (_aiogram_two, "looks like an aiogram handler (it takes (message, bot))"),
        (_with_state, "looks like an aiogram handler"),
    ],
)
def test_other_frameworks_handlers_are_refused_with_a_hint(handler: Any, hint: str) -> None:
    with pytest.raises(ConfigError, match=_literal(hint)):
        frontend_for(handler)
    with pytest.raises(ConfigError, match=_literal(hint)):
        _load(handler)


@pytest.mark.usefixtures("in_bots")
@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("wrong_targets:echo", "point at the Router it is registered on, e.g. "
         "wrong_targets:router"),
        ("wrong_targets:start", "point at the Application it is added to"),
        ("wrong_targets:on_message", "point at the Dispatcher, e.g. wrong_targets:dp"),
        ("wrong_targets:three", "a native handler takes exactly (update, bot)"),
        ("wrong_targets:sync_handler", "define it with 'async def'"),
        ("wrong_targets:MyBot", "is a class, not a bot: point at an instance of it"),
        ("wrong_targets:bot", "is None, not a bot (is it only set once the bot starts?): point "
         "at wrong_targets:router"),
        ("wrong_targets:Context", "is a class"),
        ("wrong_targets:router.include", "is a function taking (other): tgrunner calls"),
        ("aiogram_wrong:handler", "or at the function that starts it, aiogram_wrong:main"),
        ("aiogram_wrong:router", "is an aiogram Router, not a Dispatcher"),
        ("aiogram_wrong:bot", "is an aiogram Bot: point at the Dispatcher"),
        ("ptb_wrong:builder", "is a python-telegram-bot ApplicationBuilder: call .build()"),
        ("ptb_wrong:bot", "is a python-telegram-bot Bot: point tgrunner at the Application"),
        ("ptb_wrong:echo", "e.g. ptb_wrong:application"),
        # PTB's echobot builds its Application inside main(): the hint names main alone.
        ("ptb_echobot:echo", "point at the Application it is added to, or, since ptb_echobot "
         "builds it inside a function, at that function: ptb_echobot:main"),
        ("wrong_targets", "expected 'module:attribute'"),
        ("wrong_targets:", "expected 'module:attribute'"),
    ],
)  # fmt: skip
def test_wrong_targets_are_refused_with_what_to_point_at(target: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=_literal(hint)):
        _load(target)
    with pytest.raises(ConfigError, match=_literal(hint)):
        build_runner(target, token="1:abc", settings=SETTINGS)


def test_none_a_module_a_class_and_a_tgrunner_bot_are_refused() -> None:
    for obj, hint in [
        (None, "is None, not a bot"),
        (asyncio, "is a module, not a bot: point at an object in it, e.g. 'asyncio:router'"),
        (Router, "is a class, not a bot"),
        (Bot("1:abc"), "is a tgrunner Bot (the Bot API client), not a bot to run"),
        (42, "tgrunner cannot run the int, a builtins.int"),
    ]:
        with pytest.raises(ConfigError, match=_literal(hint)):
            frontend_for(obj)


def _literal(text: str) -> str:
    return "".join("\\" + c if c in "().[]*+?{}^$|\\" else c for c in text)


# -- what is called ----------------------------------------------------------------------------


def test_a_function_taking_no_arguments_is_an_entry_point_and_called_only_when_run() -> None:
    calls: list[str] = []

    def main() -> None:
        calls.append("main")

    entry = _load(main)
    assert isinstance(entry, EntryPoint)
    assert calls == []
    with pytest.raises(ConfigError, match=r"main returned without starting a bot: it never called "
                       r"dp\.start_polling\(\.\.\.\) / application\.run_polling\(\)"):  # fmt: skip
        entry.run()
    assert calls == ["main"]


async def test_an_entry_point_returning_a_bot_runs_it_as_a_factory(tg: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"factory: {ctx.text}")

    async def create() -> Router:
        return router

    entry = build_launcher(create, token=tg.token, api_url=tg.api_url, settings=SETTINGS)
    assert isinstance(entry, EntryPoint)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    alice = tg.user("Alice")
    alice.send("hi")
    replies = await tg.wait_for_replies(alice, 1, timeout=10)
    assert replies[0]["text"] == "factory: hi"
    entry.stop()
    assert await asyncio.wait_for(task, 10) == 0


def test_an_entry_point_returning_something_else_is_refused() -> None:
    def main() -> int:
        return 0

    entry = _load(main)
    assert isinstance(entry, EntryPoint)
    with pytest.raises(ConfigError, match="returned a int without starting a bot"):
        entry.run()


def test_the_users_exception_from_an_entry_point_keeps_its_own_frames() -> None:
    def main() -> None:
        raise LookupError("no such thing")

    entry = _load(main)
    with pytest.raises(UserCodeError, match="main raised LookupError: no such thing") as caught:
        entry.run()
    text = caught.value.traceback
    assert 'raise LookupError("no such thing")' in text
    assert __file__ in text
    assert "tgrunner/runtime" not in text


@pytest.mark.usefixtures("in_bots")
def test_factory_calls_sync_and_async_callables_and_runs_what_they_return() -> None:
    for target in ("wrong_targets:returns_router", "wrong_targets:returns_router_async"):
        assert isinstance(_load(target, factory=True), Runner)
        assert isinstance(build_runner(target, token="1:abc", factory=True), Runner)
    # Without --factory, build_runner still calls a function taking no arguments.
    assert isinstance(build_runner("wrong_targets:returns_router", token="1:abc"), Runner)


async def test_an_async_factory_is_awaited_from_inside_a_running_loop() -> None:
    async def create() -> Router:
        await asyncio.sleep(0)
        return Router()

    assert isinstance(_load(create, factory=True), Runner)


@pytest.mark.usefixtures("in_bots")
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("wrong_targets:router", "--factory: wrong_targets:router is a Router that cannot be "
         "called without arguments, so it is no factory; drop --factory"),
        ("wrong_targets:bot", "--factory: wrong_targets:bot is a NoneType"),
        ("wrong_targets:returns_nothing", "wrong_targets:returns_nothing returned None: a "
         "factory must return the bot"),
        ("wrong_targets:MyBot", "tgrunner cannot run wrong_targets:MyBot, a wrong_targets.MyBot"),
        ("aiogram_wrong:polls_at_factory", "aiogram_wrong:polls_at_factory starts the bot "
         "itself (dp.start_polling()), so it is an entry point, not a factory returning the "
         "bot: run it without --factory"),
    ],
)  # fmt: skip
def test_factory_refusals(target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=_literal(message)):
        _load(target, factory=True)


@pytest.mark.usefixtures("in_bots")
def test_build_runner_refuses_an_entry_point_it_cannot_return_as_a_runner() -> None:
    with pytest.raises(ConfigError, match=_literal("starts the bot itself (dp.start_polling())")):
        build_runner("aiogram_wrong:polls_at_factory", token="1:abc")


@pytest.mark.usefixtures("in_bots")
def test_a_factory_that_raises_shows_its_traceback() -> None:
    with pytest.raises(UserCodeError, match="explodes raised RuntimeError: the factory failed"):
        _load("wrong_targets:explodes", factory=True)


# -- errors in the user's module ----------------------------------------------------------------


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, name, raising=False)
    return path


def _frames(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.lstrip().startswith('File "')]


def test_an_import_error_keeps_the_users_frames_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _module(tmp_path, monkeypatch, "raises_on_import", """\
        def ratio():
            return 1 / 0

        VALUE = ratio()
    """)  # fmt: skip
    with pytest.raises(UserCodeError) as caught:
        _load("raises_on_import:VALUE")
    error = caught.value
    assert str(error) == (
        "importing 'raises_on_import' raised ZeroDivisionError: division by zero (traceback above)"
    )
    assert _frames(error.traceback) == [
        f'  File "{path}", line 4, in <module>',
        f'  File "{path}", line 2, in ratio',
    ]
    assert error.traceback.startswith("Traceback (most recent call last):\n")
    assert error.traceback.endswith("ZeroDivisionError: division by zero\n")


def test_a_syntax_error_shows_file_line_and_caret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _module(tmp_path, monkeypatch, "bad_syntax", "x = 1\ndef broken(:\n    pass\n")
    with pytest.raises(UserCodeError, match="importing 'bad_syntax' raised SyntaxError") as caught:
        _load("bad_syntax:x")
    text = caught.value.traceback
    assert f'  File "{path}", line 2\n' in text
    assert "    def broken(:\n" in text
    assert "^" in text
    assert "importlib" not in text and "Traceback" not in text


def test_a_chained_error_and_a_missing_dependency_keep_the_users_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _module(tmp_path, monkeypatch, "chained", """\
        try:
            import no_such_dependency_at_all
        except ImportError as exc:
            raise RuntimeError("install the extras") from exc
    """)  # fmt: skip
    with pytest.raises(UserCodeError, match="raised RuntimeError: install the extras") as caught:
        _load("chained:x")
    text = caught.value.traceback
    assert "ModuleNotFoundError: No module named 'no_such_dependency_at_all'" in text
    assert set(_frames(text)) == {
        f'  File "{path}", line 2, in <module>',
        f'  File "{path}", line 4, in <module>',
    }
    # A module that is missing itself is a one-line error, not the user's traceback.
    with pytest.raises(ConfigError, match="Cannot import module 'nowhere_to_be_found'") as gone:
        _load("nowhere_to_be_found:x")
    assert not isinstance(gone.value, UserCodeError)


def test_a_missing_token_at_import_gets_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path, monkeypatch, "env_bot", """\
        from aiogram import Bot
        bot = Bot(token=None)
    """)  # fmt: skip
    with pytest.raises(UserCodeError, match=_literal("(no token? pass --token, or set BOT_TOKEN)")):
        _load("env_bot:bot")


async def test_a_module_that_starts_its_bot_while_imported_is_refused(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _module(tmp_path, monkeypatch, "starts_at_import", f"""\
        import asyncio
        from aiogram import Bot, Dispatcher
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        dp = Dispatcher()

        async def main():
            api = TelegramAPIServer.from_base({tg.api_url!r})
            async with Bot({tg.token!r}, session=AiohttpSession(api=api)) as bot:
                await dp.start_polling(bot)

        asyncio.run(main())
    """)  # fmt: skip
    with pytest.raises(ConfigError, match=_literal(
        "importing 'starts_at_import' starts the bot (dp.start_polling() runs while the module "
        "is imported): put the code that starts it under 'if __name__ == \"__main__\":'"
    )):  # fmt: skip
        await asyncio.to_thread(_load, "starts_at_import:dp")
    assert tg.calls("getUpdates") == []
    assert Dispatcher.start_polling.__module__ == "aiogram.dispatcher.dispatcher"


def test_run_help_states_the_rules_and_factory() -> None:
    from tgrunner.cli import _parser

    parser = _parser("run")
    assert parser.parse_args(["run", "mybot:create", "--factory"]).factory is True
    assert parser.parse_args(["run", "mybot:dp"]).factory is False
    commands = next(action for action in parser._actions if action.dest == "command")
    assert isinstance(commands.choices, dict)
    run_parser = commands.choices["run"]
    text = " ".join(run_parser.format_help().split())
    assert "what TARGET may be:" in text
    assert "--factory call TARGET (sync or async, no arguments) and run the bot it returns" in text
    assert "tgrunner sets it to the token given before it imports the module" in text
