"""Front-ends are found by name: :data:`tgrunner.frontends.ADAPTERS` maps a framework's
top-level package to its adapter's import string, imported only when an object of that
framework is run; neither the front-ends package nor an adapter imports the runtime."""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
from aiogram import Dispatcher
from telegram.ext import ApplicationBuilder

import tgrunner.frontends
from tgrunner.frontends import ADAPTERS, ENTRY_HOOKS, detect

FRONTENDS = Path(tgrunner.frontends.__file__).parent


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_import_string_names_a_function(name: str) -> None:
    module, _, attr = ADAPTERS[name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), ADAPTERS[name]


def test_adapters_are_keyed_by_the_frameworks_top_level_package() -> None:
    dispatcher = Dispatcher()
    application = ApplicationBuilder().token("1:a").build()
    assert type(dispatcher).__module__.partition(".")[0] in ADAPTERS
    assert type(application).__module__.partition(".")[0] in ADAPTERS
    assert detect(object(), token=None, api_url=None) is None
    assert detect((), token=None, api_url=None) is None


@pytest.mark.timeout(30)
async def test_a_native_bot_imports_no_framework() -> None:
    code = (
        "import sys\n"
        "from tgrunner.runtime.build import frontend_for\n"
        "from tgrunner.frontends.native import Router\n"
        "frontend_for(Router())\n"
        "print(sorted({'aiogram', 'telegram'} & set(sys.modules)))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().strip() == "[]", f"a native bot imported {out.decode().strip()}"


@pytest.mark.parametrize(
    "path",
    [
        "__init__.py",
        "aiogram/adapter.py",
        "aiogram/session.py",
        "aiogram/compat.py",
        "aiogram/entry.py",
        "ptb/adapter.py",
        "ptb/request.py",
        "ptb/compat.py",
        "ptb/entry.py",
    ],
)
def test_the_front_ends_and_adapters_do_not_import_the_runtime(path: str) -> None:
    tree = ast.parse((FRONTENDS / path).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    runtime = [name for name in imported if name.startswith("tgrunner.runtime")]
    assert runtime == [], f"{path} imports {runtime}: only the launch modules sit above it"


@pytest.mark.parametrize("name", sorted(ENTRY_HOOKS))
def test_every_entry_hook_names_a_function_of_an_importable_module(name: str) -> None:
    module, _, attr = ENTRY_HOOKS[name].partition(":")
    assert importlib.util.find_spec(name) is not None, name
    assert callable(getattr(importlib.import_module(module), attr)), ENTRY_HOOKS[name]


@pytest.mark.timeout(30)
async def test_intercepting_catches_a_framework_imported_inside_it_and_leaves_it_whole() -> None:
    code = (
        "import sys\n"
        "from tgrunner.frontends import intercepting\n"
        "class Handoff:\n"
        "    def run_call(self, call):\n"
        "        print('caught', call.call, call.allowed_updates)\n"
        "assert 'telegram.ext' not in sys.modules\n"
        "with intercepting(Handoff()):\n"
        "    import telegram.ext\n"
        "    app = telegram.ext.Application.builder().token('1:a').build()\n"
        "    app.run_polling(allowed_updates=['message'])\n"
        "print('loader', type(telegram.ext.__loader__).__name__,\n"
        "      type(telegram.ext.__spec__.loader).__name__)\n"
        "print('restored', telegram.ext.Application.run_polling.__module__)\n"
        "print('finders', [type(f).__name__ for f in sys.meta_path if 'After' in repr(f)])\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out
    assert out.decode().splitlines() == [
        "caught application.run_polling() ('message',)",
        "loader SourceFileLoader SourceFileLoader",
        "restored telegram.ext._application",
        "finders []",
    ]
