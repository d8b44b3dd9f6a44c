"""The Bot's retry policy: a request is resent at most once, only for a method that is safe
to repeat, and only when the connection broke before any byte of an answer came.

An earlier transport resent any request whose reused connection closed before answering,
``sendMessage`` included: a server that had read it then sent the message twice.
"""

from __future__ import annotations

import asyncio

import pytest
from loopback import raw_serving, read_request

from tgrunner import errors
from tgrunner.client.bot import Bot
from tgrunner.client.retry import is_safe, may_resend
from tgrunner.client.transports.errors import TransportError, TransportTimeout

ANSWER = b'{"ok":true,"result":{"id":1}}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(ANSWER),
    ANSWER,
)


TRANSPORTS = ["fast", "aiohttp"]


class Server:
    """Answers the first request; reads the second and closes without a word (``partial``:
    after half an answer); answers again on later connections unless ``always_break``."""

    def __init__(self, *, partial: bool = False, always_break: bool = False) -> None:
        self.seen: list[tuple[int, str]] = []
        self.partial = partial
        self.always_break = always_break
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        while request := await read_request(reader):
            self.seen.append((number, request.split(b" ")[1].rpartition(b"/")[2].decode()))
            if len(self.seen) == 2 or (self.always_break and len(self.seen) > 1):
                if self.partial:
                    writer.write(OK[:20])
                    await writer.drain()
                return
            writer.write(OK)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("method", ["getChat", "getUpdates", "setWebhook", "deleteWebhook"])
async def test_a_safe_method_is_resent_once_on_a_new_connection(
    method: str, transport: str
) -> None:
    server = Server()
    async with raw_serving(server) as url, Bot("1:AAtest", api_url=url, transport=transport) as bot:
        await bot.get_me()
        assert await bot.call(method) == {"id": 1}
    assert server.seen == [(1, "getMe"), (1, method), (2, method)]


@pytest.mark.parametrize(
    "method", ["sendMessage", "copyMessage", "forwardMessage", "editMessageText", "deleteMessage"]
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unsafe_method_is_never_resent(method: str, transport: str) -> None:
    server = Server()
    async with raw_serving(server) as url, Bot("1:AAtest", api_url=url, transport=transport) as bot:
        await bot.get_me()
        with pytest.raises(errors.NetworkError, match=f"{method}: .*before answering"):
            await bot.call(method, chat_id=1)
    assert server.seen == [(1, "getMe"), (1, method)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_nothing_is_resent_after_part_of_an_answer(transport: str) -> None:
    server = Server(partial=True)
    async with raw_serving(server) as url, Bot("1:AAtest", api_url=url, transport=transport) as bot:
        await bot.get_me()
        with pytest.raises(errors.NetworkError, match="getChat"):
            await bot.call("getChat", chat_id=1)
    assert server.seen == [(1, "getMe"), (1, "getChat")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_safe_method_is_resent_at_most_once(transport: str) -> None:
    server = Server(always_break=True)
    async with raw_serving(server) as url, Bot("1:AAtest", api_url=url, transport=transport) as bot:
        await bot.get_me()
        with pytest.raises(errors.NetworkError, match="getChat"):
            await bot.call("getChat", chat_id=1)
    assert server.seen == [(1, "getMe"), (1, "getChat"), (2, "getChat")]


@pytest.mark.parametrize(
    ("method", "safe"),
    [
        ("getMe", True),
        ("getUpdates", True),
        ("getFile", True),
        ("getWebhookInfo", True),
        ("setWebhook", True),
        ("deleteWebhook", True),
        ("setMyCommands", True),
        ("sendMessage", False),
        ("sendMediaGroup", False),
        ("copyMessages", False),
        ("forwardMessage", False),
        ("editMessageText", False),
        ("answerCallbackQuery", False),
        ("logOut", False),
    ],
)
def test_which_methods_are_safe(method: str, safe: bool) -> None:
    assert is_safe(method) is safe


def test_which_failures_allow_a_resend() -> None:
    assert may_resend("getMe", TransportError("broke", sent=True, answered=False))
    assert may_resend("getMe", TransportError("refused", sent=False))
    assert not may_resend("getMe", TransportError("half", answered=True))
    assert not may_resend("getMe", TransportTimeout("slow"))
    assert not may_resend("sendMessage", TransportError("refused", sent=False))
