"""The native Bot API client: any method by name, typed helpers for the common ones.

``Bot`` sends JSON bodies (multipart when a file is attached) over a keep-alive connection pool
and returns the ``result`` of Telegram's envelope as plain dicts and lists, parsed with orjson.
Errors are raised as the classes of :mod:`tgrunner.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Self

import orjson

from tgrunner.client.multipart import InputFile, encode_multipart, has_files, is_file
from tgrunner.client.transports.fast import HTTPClient, TransportError, TransportTimeout
from tgrunner.errors import ConfigError, NetworkError, ServerError, TimedOut, telegram_error

__all__ = ["DEFAULT_API_URL", "Bot", "InputFile"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"

JSON = dict[str, Any]


def _check_token(token: str) -> None:
    bot_id, sep, secret = token.partition(":")
    if not (sep and bot_id.isdigit() and secret) or any(c in token for c in "/ \t\r\n"):
        raise ConfigError(
            "The bot token is not in Telegram's format '<bot id>:<secret>'. "
            "Copy it from @BotFather, or pass the test token FakeTelegram prints."
        )


_JSON = "application/json"
# Values that are never files: the common call (sendMessage and friends) takes this path only.
_PLAIN = frozenset({str, int, float, bool, dict, list, tuple})


def _encode(params: Mapping[str, Any]) -> tuple[bytes, str]:
    """The request body: JSON, or multipart when a file is attached. ``None`` values are left
    out."""
    plain = True
    for value in params.values():
        if type(value) not in _PLAIN:
            plain = False
            break
    if plain and "media" not in params:
        return orjson.dumps(params), _JSON
    clean = {k: v for k, v in params.items() if v is not None}
    if _attach_media(clean) or has_files(clean):
        return encode_multipart(clean)
    return orjson.dumps(clean), _JSON


def _attach_media(params: dict[str, Any]) -> bool:
    """Move files nested in ``media`` (sendMediaGroup, editMessageMedia) to attach:// parts."""
    media = params.get("media")
    items = media if isinstance(media, list) else [media] if isinstance(media, dict) else []
    found = False
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for field in ("media", "thumbnail", "cover"):
            value = item.get(field)
            if is_file(value):
                name = f"tgr_{i}_{field}"
                item[field] = f"attach://{name}"
                params[name] = value
                found = True
    return found


class Bot:
    """A Bot API client.

    - ``token``: the bot token from @BotFather (checked for format up front).
    - ``api_url``: the server, default ``https://api.telegram.org``; point it at a self-hosted
      Bot API server or at FakeTelegram's ``api_url``.
    - ``timeout``: seconds to wait for an answer, default 60; ``getUpdates`` adds its long-poll
      timeout to it.
    - ``pool_size``: keep-alive connections at most, default 100.

    Use ``async with Bot(...) as bot`` or call ``await bot.close()`` when done.
    """

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 60.0,
        pool_size: int = 100,
    ) -> None:
        _check_token(token)
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.id = int(token.partition(":")[0])
        self._http = HTTPClient(self.api_url, pool_size=pool_size, default_timeout=timeout)
        self._prefix = f"/bot{token}/"
        self._me: JSON | None = None

    def __repr__(self) -> str:
        return f"Bot(id={self.id}, api_url={self.api_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool. Safe to call twice."""
        await self._http.close()

    def call(
        self, method: str, /, *, timeout: float | None = None, **params: Any
    ) -> Awaitable[Any]:
        """Call any Bot API method by name and return its ``result``.

        ``None`` values are left out. Files (``InputFile``, bytes, ``Path``, binary streams)
        switch the body to multipart. Raises a :class:`~tgrunner.errors.TelegramError`
        subclass on ``ok: false`` and :class:`~tgrunner.errors.NetworkError` on transport
        failure.
        """
        return self.request(method, params, timeout=timeout)

    async def request(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Like :meth:`call`, with the parameters as a mapping."""
        body, ctype = _encode(params) if params else (b"", _JSON)
        try:
            resp = await self._http.request(
                "POST",
                self._prefix + method,
                body,
                content_type=ctype,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except TransportTimeout as exc:
            raise TimedOut(method, f"no answer from {self.api_url}: {exc}") from exc
        except (TransportError, OSError) as exc:
            raise NetworkError(method, f"cannot reach {self.api_url}: {exc}") from exc
        try:
            payload = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            if resp.status >= 500 or resp.status == 429:
                text = resp.body[:200].decode(errors="replace")
                raise ServerError(method, resp.status, text) from None
            raise NetworkError(
                method, f"the server answered {resp.status} with a body that is not JSON"
            ) from None
        if payload.get("ok"):
            return payload.get("result")
        raise telegram_error(method, payload, resp.status)

    # -- typed helpers for the common methods -------------------------------------------------
    # They return the awaitable of :meth:`request` rather than awaiting it in a coroutine of
    # their own: one frame less on the hot path; ``await bot.send_message(...)`` is the same.

    async def get_me(self) -> JSON:
        """``getMe``; the answer is cached after the first call."""
        if self._me is None:
            self._me = await self.request("getMe")
        return self._me

    def get_updates(
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: int = 0,
        allowed_updates: Sequence[str] | None = None,
    ) -> Awaitable[list[JSON]]:
        """``getUpdates``; the request may take the long-poll ``timeout`` plus ``self.timeout``."""
        params: dict[str, Any] = {"timeout": timeout}
        if offset is not None:
            params["offset"] = offset
        if limit is not None:
            params["limit"] = limit
        if allowed_updates is not None:
            params["allowed_updates"] = list(allowed_updates)
        return self.request("getUpdates", params, timeout=self.timeout + timeout)

    def send_message(self, chat_id: int | str, text: str, **params: Any) -> Awaitable[JSON]:
        """``sendMessage``. Extra parameters (``reply_markup``, ``parse_mode``, …) pass through."""
        params["chat_id"] = chat_id
        params["text"] = text
        return self.request("sendMessage", params)

    def send_photo(self, chat_id: int | str, photo: Any, **params: Any) -> Awaitable[JSON]:
        """``sendPhoto``: ``photo`` is a file_id, a URL or a file to upload."""
        params["chat_id"] = chat_id
        params["photo"] = photo
        return self.request("sendPhoto", params)

    def send_document(self, chat_id: int | str, document: Any, **params: Any) -> Awaitable[JSON]:
        """``sendDocument``: ``document`` is a file_id, a URL or a file to upload."""
        params["chat_id"] = chat_id
        params["document"] = document
        return self.request("sendDocument", params)

    def send_chat_action(self, chat_id: int | str, action: str = "typing") -> Awaitable[bool]:
        """``sendChatAction``; ``action`` defaults to ``typing``."""
        return self.request("sendChatAction", {"chat_id": chat_id, "action": action})

    def forward_message(
        self, chat_id: int | str, from_chat_id: int | str, message_id: int, **params: Any
    ) -> Awaitable[JSON]:
        """``forwardMessage``."""
        params.update(chat_id=chat_id, from_chat_id=from_chat_id, message_id=message_id)
        return self.request("forwardMessage", params)

    def copy_message(
        self, chat_id: int | str, from_chat_id: int | str, message_id: int, **params: Any
    ) -> Awaitable[JSON]:
        """``copyMessage``; returns the new ``MessageId``."""
        params.update(chat_id=chat_id, from_chat_id=from_chat_id, message_id=message_id)
        return self.request("copyMessage", params)

    def edit_message_text(self, text: str, **params: Any) -> Awaitable[JSON | bool]:
        """``editMessageText`` by ``chat_id`` + ``message_id`` or ``inline_message_id``."""
        params["text"] = text
        return self.request("editMessageText", params)

    def delete_message(self, chat_id: int | str, message_id: int) -> Awaitable[bool]:
        """``deleteMessage``."""
        return self.request("deleteMessage", {"chat_id": chat_id, "message_id": message_id})

    def answer_callback_query(self, callback_query_id: str, **params: Any) -> Awaitable[bool]:
        """``answerCallbackQuery``; ``text``, ``show_alert``, ``url``, ``cache_time`` optional."""
        params["callback_query_id"] = callback_query_id
        return self.request("answerCallbackQuery", params)

    def answer_inline_query(
        self, inline_query_id: str, results: Sequence[JSON], **params: Any
    ) -> Awaitable[bool]:
        """``answerInlineQuery``."""
        params.update(inline_query_id=inline_query_id, results=list(results))
        return self.request("answerInlineQuery", params)

    def get_chat(self, chat_id: int | str) -> Awaitable[JSON]:
        """``getChat``."""
        return self.request("getChat", {"chat_id": chat_id})

    def set_webhook(self, url: str, **params: Any) -> Awaitable[bool]:
        """``setWebhook``; ``secret_token``, ``allowed_updates``, ``max_connections`` optional."""
        params["url"] = url
        return self.request("setWebhook", params)

    def delete_webhook(self, drop_pending_updates: bool = False) -> Awaitable[bool]:
        """``deleteWebhook``; pending updates are kept unless ``drop_pending_updates``."""
        return self.request("deleteWebhook", {"drop_pending_updates": drop_pending_updates})

    def get_webhook_info(self) -> Awaitable[JSON]:
        """``getWebhookInfo``."""
        return self.request("getWebhookInfo")
