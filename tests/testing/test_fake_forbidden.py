"""FakeTelegram answers a send into a chat the bot may not write in as Telegram does: 403 for a
user who blocked the bot or a chat that kicked it, 400 ``chat not found`` for a chat that does
not exist; unblocking (or writing to the bot) makes sends work again."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tgrunner.testing import FakeTelegram

pytestmark = pytest.mark.timeout(10)


async def send(tg: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{tg.api_url}/bot{tg.token}/{method}", json=params) as response,
    ):
        return response.status, await response.json()


async def test_a_user_who_blocked_the_bot_answers_403_until_unblocked(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    assert (await send(tg, "sendMessage", chat_id=alice.id, text="hi"))[0] == 200
    alice.block_bot()
    status, body = await send(tg, "sendMessage", chat_id=alice.id, text="hi")
    assert (status, body["error_code"]) == (403, 403)
    assert body["description"] == "Forbidden: bot was blocked by the user"
    photo = await send(tg, "sendPhoto", chat_id=alice.id, photo="https://example.com/p.jpg")
    assert photo[0] == 403  # every send method, not only sendMessage
    alice.unblock_bot()
    assert (await send(tg, "sendMessage", chat_id=alice.id, text="back"))[0] == 200
    alice.block_bot()
    alice.send("/start")  # writing to a blocked bot restarts it
    assert (await send(tg, "sendMessage", chat_id=alice.id, text="again"))[0] == 200
    assert [r.status for r in tg.calls("sendMessage")] == [200, 403, 200, 200]


async def test_a_chat_that_kicked_the_bot_answers_403(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    team = tg.supergroup("Team", members=[alice])
    assert (await send(tg, "sendMessage", chat_id=team.id, text="hi"))[0] == 200
    team.kick_bot()
    status, body = await send(tg, "sendMessage", chat_id=team.id, text="hi")
    assert status == 403
    assert body["description"] == "Forbidden: bot was kicked from the supergroup chat"


async def test_an_unknown_chat_is_not_found(tg: FakeTelegram) -> None:
    status, body = await send(tg, "sendMessage", chat_id=987654321, text="hi")
    assert (status, body["description"]) == (400, "Bad Request: chat not found")
