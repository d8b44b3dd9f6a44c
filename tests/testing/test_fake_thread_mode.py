"""FakeTelegram in a background thread, driven from plain sync code."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from tgrunner.testing import FakeTelegram

ALICE = {"id": 1001, "type": "private", "first_name": "Alice"}


def call(tg: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{tg.api_url}/bot{tg.token}/{method}",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_serves_sync_code_from_a_thread() -> None:
    with FakeTelegram().in_thread() as tg:
        assert tg.api_url.startswith("http://127.0.0.1:")
        assert tg.port > 0
        assert call(tg, "getMe") == (200, {"ok": True, "result": tg.bot_user})
        # State calls from this thread hop onto the server's loop.
        tg.state.register_chat(ALICE)
        update = tg.state.push_update(
            "message",
            {
                "message_id": tg.state.next_message_id(ALICE["id"]),
                "from": {"id": ALICE["id"], "is_bot": False, "first_name": "Alice"},
                "chat": ALICE,
                "date": tg.state.now(),
                "text": "hi",
            },
        )
        assert tg.pending_updates == 1
        assert call(tg, "getUpdates")[1]["result"] == [update]
        assert call(tg, "sendMessage", chat_id=ALICE["id"], text="hello")[0] == 200
        [reply] = tg.wait_for_replies_sync(ALICE, 1)
        assert reply["text"] == "hello"
        assert tg.wait_for_call_sync("sendMessage").params["text"] == "hello"
        assert [r.method for r in tg.calls()] == ["getMe", "getUpdates", "sendMessage"]


def test_a_long_poll_from_one_thread_is_woken_by_another() -> None:
    with FakeTelegram().in_thread() as tg:
        tg.state.register_chat(ALICE)
        result: list[Any] = []
        poller = threading.Thread(target=lambda: result.append(call(tg, "getUpdates", timeout=30)))
        poller.start()
        tg.wait_for_sync(lambda: tg.state.primary.long_poll is not None)
        tg.state.push_update(
            "message",
            {
                "message_id": tg.state.next_message_id(ALICE["id"]),
                "chat": ALICE,
                "date": tg.state.now(),
                "text": "wake",
            },
        )
        poller.join(10)
        assert not poller.is_alive()
        [(status, body)] = result
        assert status == 200
        assert body["result"][0]["message"]["text"] == "wake"


def test_wait_helpers_time_out() -> None:
    with FakeTelegram().in_thread() as tg, pytest.raises(TimeoutError):
        tg.wait_for_replies_sync(ALICE["id"], 1, timeout=0.05)


def test_pause_and_resume_from_another_thread() -> None:
    with FakeTelegram().in_thread() as tg:
        tg.pause()
        result: list[Any] = []
        caller = threading.Thread(target=lambda: result.append(call(tg, "getMe")))
        caller.start()
        tg.wait_for_sync(lambda: tg.held == 1)
        assert result == []
        tg.resume()
        caller.join(10)
        assert result[0][0] == 200


def test_start_and_stop_explicitly_and_stop_twice() -> None:
    tg = FakeTelegram().start_in_thread()
    try:
        assert call(tg, "getMe")[0] == 200
    finally:
        tg.stop_thread()
    tg.stop_thread()
    # The port is free again: nothing listens there any more.
    with pytest.raises(urllib.error.URLError):
        call(tg, "getMe")


def test_sync_helpers_need_thread_mode() -> None:
    tg = FakeTelegram()
    with pytest.raises(RuntimeError, match="thread"):
        tg.wait_for_sync(lambda: True)
