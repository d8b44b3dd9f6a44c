"""Functions found again by their import path (``tgrunner._import_path``), as jobs' ``@task``
and broadcasts' ``build`` use it: a lambda, a closure, a nested function, a builtin or a
partial is refused with the caller's error and words; a path that does not lead back to the
object is refused; a function of a script run as ``python bot.py`` is found in the script."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import broadcast_builds
from tgrunner._import_path import check_importable, find_by_path, function_path, import_path
from tgrunner.errors import ConfigError, JobError
from tgrunner.jobs import task

pytestmark = pytest.mark.timeout(20)

WHAT = "the test's function"


def top_level(x: int) -> int:
    return x


def test_a_top_level_function_is_named_and_found_again() -> None:
    path = function_path(broadcast_builds.personal, what=WHAT, error=ConfigError)
    assert path == "broadcast_builds:personal"
    assert import_path(path, what=WHAT, error=ConfigError) is broadcast_builds.personal
    assert find_by_path(path, what=WHAT, error=ConfigError) is broadcast_builds.personal
    check_importable(broadcast_builds.personal, path, what=WHAT, error=ConfigError)


def test_what_has_no_path_is_refused_with_the_callers_error() -> None:
    def nested(x: int) -> int:
        return x

    factor = 3
    closure = lambda x: x * factor  # noqa: E731
    for fn in (nested, closure, (lambda x: x)):
        with pytest.raises(ConfigError, match=r"cannot be imported by its path \(a lambda"):
            function_path(fn, what=WHAT, error=ConfigError)
    with pytest.raises(JobError, match="define the test's function at the top level"):
        function_path(nested, what=WHAT, error=JobError)
    with pytest.raises(ConfigError, match="has no import path: the test's function must be"):
        function_path(functools.partial(top_level, 1), what=WHAT, error=ConfigError)


def test_a_path_that_does_not_lead_back_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot import the module 'no_such_module_here'"):
        import_path("no_such_module_here:f", what=WHAT, error=ConfigError)
    with pytest.raises(ConfigError, match=r"has no 'gone': was it renamed\?"):
        import_path("broadcast_builds:gone", what=WHAT, error=ConfigError)
    with pytest.raises(ConfigError, match="names another object than the test's function"):
        check_importable(top_level, "broadcast_builds:personal", what=WHAT, error=ConfigError)


def test_a_task_is_still_refused_when_it_has_no_path() -> None:
    with pytest.raises(JobError, match="cannot be imported by its path"):
        task(lambda: None)


def test_a_function_of_a_script_is_found_in_the_script(tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(
        textwrap.dedent(
            """
            from tgrunner._import_path import check_importable, find_by_path, function_path
            from tgrunner.errors import ConfigError

            RUNS = []
            RUNS.append(1)  # importing the script a second time would run this again

            def build(chat_id):
                return {"text": "hi"}

            if __name__ == "__main__":
                path = function_path(build, what="build", error=ConfigError)
                check_importable(build, path, what="build", error=ConfigError)
                assert find_by_path(path, what="build", error=ConfigError) is build
                print(path, len(RUNS))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=15, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "bot:build 1\n", "")
    inline = subprocess.run(
        [sys.executable, "-c", "def f(x): pass\n"
         "from tgrunner._import_path import function_path\n"
         "from tgrunner.errors import ConfigError\n"
         "function_path(f, what='build', error=ConfigError)"],
        capture_output=True, text=True, timeout=15, check=False,
    )  # fmt: skip
    assert inline.returncode == 1
    assert "build cannot be defined in an interactive session" in inline.stderr
