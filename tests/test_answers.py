"""tgrunner.answers: what a direct-mode webhook's answer may carry."""

from __future__ import annotations

import orjson
import pytest

from tgrunner.answers import Answers


@pytest.mark.timeout(10)
def test_an_answer_is_kept_once_and_taken_once() -> None:
    answers = Answers()
    assert not answers.offer(1, "sendMessage", {"chat_id": 5, "text": "hi"})  # off by default
    answers.enabled = True
    assert answers.offer(1, "sendMessage", {"chat_id": 5, "text": "hi"})
    assert not answers.offer(1, "sendMessage", {"chat_id": 5, "text": "again"})  # one each
    assert orjson.loads(answers.take(1) or b"") == {"method": "sendMessage", "chat_id": 5,
                                                   "text": "hi"}  # fmt: skip
    assert answers.take(1) is None


@pytest.mark.parametrize("method", ["getMe", "getChat", "GETUPDATES"])
@pytest.mark.timeout(10)
def test_a_get_method_is_never_an_answer(method: str) -> None:
    answers = Answers()
    answers.enabled = True
    assert not answers.offer(7, method, {})
    assert answers.take(7) is None
