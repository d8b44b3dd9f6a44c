"""The public API is exactly what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import tgrunner
import tgrunner.testing

EXPECTED = {
    "BadRequest", "Bot", "ConfigError", "Conflict", "Context", "Forbidden", "InputFile",
    "NetworkError", "NotFound", "PollingOptions", "RetryAfter", "Router", "Runner",
    "RunnerStats", "Scheduler", "SchedulerFull", "SchedulerOptions", "ServerError", "Settings",
    "TelegramError", "TgrunnerError", "TimedOut", "Unauthorized", "__version__",
    "chat_and_user_keys", "default_keys", "errors", "run",
}  # fmt: skip


def test_all_is_the_expected_api() -> None:
    assert set(tgrunner.__all__) == EXPECTED


def test_all_names_exist() -> None:
    for module in (tgrunner, tgrunner.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_public_names_are_exported() -> None:
    for module in (tgrunner, tgrunner.testing):
        public = {n for n in dir(module) if not n.startswith("_")}
        # Submodules imported as a side effect of importing the package are not API.
        modules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - modules - set(module.__all__) - {"annotations"} == set()


def test_errors_carry_method_code_and_retry_after() -> None:
    err = tgrunner.errors.telegram_error(
        "sendMessage",
        {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
         "parameters": {"retry_after": 3}},
    )  # fmt: skip
    assert isinstance(err, tgrunner.RetryAfter)
    assert (err.method, err.error_code, err.retry_after) == ("sendMessage", 429, 3)
    assert isinstance(
        tgrunner.errors.telegram_error("x", {"error_code": 502}), tgrunner.ServerError
    )
