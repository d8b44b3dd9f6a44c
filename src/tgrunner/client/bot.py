"""The native Bot API client: any method by name, typed helpers for the common ones.

``Bot`` sends JSON bodies (multipart when a file is attached) through a transport (the
``fast`` keep-alive pool by default, ``aiohttp`` whenever a proxy is configured) and returns
the ``result`` of Telegram's envelope as plain dicts and lists, parsed with orjson. Errors are
raised as the classes of :mod:`tgrunner.errors`. A request is resent at most once, and only
when :mod:`tgrunner.client.retry` allows it for that method.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import orjson

from tgrunner.client.multipart import InputFile, encode_multipart, has_files, is_file, reads_files
from tgrunner.client.retry import may_resend
from tgrunner.client.timing import CallObserver, CallTimes
from tgrunner.client.transports import check_name, proxy_from_env, transport_class
from tgrunner.client.transports.errors import TransportError, TransportTimeout
from tgrunner.errors import (
    ConfigError,
    NetworkError,
    ServerError,
    TimedOut,
    UnexpectedAnswer,
    telegram_error,
)
from tgrunner.flood.limiter import FloodControl, flood_control
from tgrunner.flood.options import FloodOptions
from tgrunner.protocols import Response, Transport

__all__ = ["DEFAULT_API_URL", "Bot", "InputFile", "check_api_url", "token_bot_id"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"

JSON = dict[str, Any]


def token_bot_id(token: str | None) -> int | None:
    """The bot's id, the digits before a token's ``:``; None for no token or another form."""
    head = (token or "").partition(":")[0]
    return int(head) if head.isdigit() else None


def _check_token(token: str) -> None:
    bot_id, sep, secret = token.partition(":")
    if not (sep and bot_id.isdigit() and secret) or any(c in token for c in "/ \t\r\n"):
        raise ConfigError(
            "The bot token is not in Telegram's format '<bot id>:<secret>'. "
            "Copy it from @BotFather, or pass the test token FakeTelegram prints."
        )


def check_api_url(url: str) -> str:
    """``url`` without a trailing slash when it can be a Bot API server's root URL; else
    ValueError saying what to give instead.

    Accepted: ``http(s)://host[:port]``, optionally with a path prefix (a reverse proxy's).
    Refused: no scheme (``localhost:8081``), and python-telegram-bot's ``base_url`` style
    ``.../bot`` (the Bot adds ``/bot<token>/`` itself).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        example = f"http://{url}" if "://" not in url and url else "https://api.telegram.org"
        raise ValueError(
            f"{url!r} is not an http:// or https:// URL; give the Bot API server's root URL "
            f"with its scheme, such as {example}"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} may not have a query, a fragment or a user name")
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if re.fullmatch(r"bot(\d+:.*)?", last):
        root = f"{parts.scheme}://{parts.netloc}{head}"
        raise ValueError(
            f"{url!r} ends in /{last[:3]}, as python-telegram-bot's base_url does; tgrunner adds "
            f"/bot<token> itself, so give the server's root without /bot: {root}"
        )
    return url.rstrip("/")


_JSON = "application/json"
# Values that are never files: the common call (sendMessage and friends) takes this path only.
_PLAIN = frozenset({str, int, float, bool, dict, list, tuple})


def _json_body(params: Mapping[str, Any]) -> bytes | None:
    """The JSON body when no value can be a file (the common call), else None."""
    for value in params.values():
        if type(value) not in _PLAIN:
            return None
    if "media" in params:
        return None
    return orjson.dumps(params)


async def _encode_files(params: Mapping[str, Any]) -> tuple[bytes, str]:
    """The body when a value may be a file: multipart when one is, else JSON. ``None`` values
    are left out; files are read in a thread, off the event loop."""
    clean = {k: v for k, v in params.items() if v is not None}
    if not (_attach_media(clean) or has_files(clean)):
        return orjson.dumps(clean), _JSON
    if reads_files(clean):
        return await asyncio.to_thread(encode_multipart, clean)
    return encode_multipart(clean)


_MEDIA_FILES = ("media", "thumbnail", "cover")


def _attach_media(params: dict[str, Any]) -> bool:
    """Move files nested in ``media`` (sendMediaGroup, editMessageMedia) to attach:// parts.

    The caller's ``media`` items are left as they were: an item with a file is replaced in
    ``params`` by a copy, so a call made again with the same objects sends the files again.
    """
    media = params.get("media")
    single = isinstance(media, dict)
    items = [media] if single else media if isinstance(media, list) else []
    found = False
    out: list[Any] = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and any(is_file(item.get(f)) for f in _MEDIA_FILES):
            item = dict(item)
            for field in _MEDIA_FILES:
                value = item.get(field)
                if is_file(value):
                    name = f"tgr_{i}_{field}"
                    item[field] = f"attach://{name}"
                    params[name] = value
            found = True
        out.append(item)
    if found:
        params["media"] = out[0] if single else out
    return found


def _safe_url(url: str) -> str:
    """``url`` without the user name and password it may carry (a proxy's)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _network_error(method: str, api_url: str, exc: Exception) -> NetworkError:
    if isinstance(exc, TransportTimeout):
        return TimedOut(method, f"no answer from {api_url}: {exc}")
    return NetworkError(method, f"cannot reach {api_url}: {exc}")


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)
_MARKUP = re.compile(rb"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL)
_GIST = 80  # characters of a page's title or first words


def _gist(resp: Response) -> str:
    """One line on a body that is not JSON: an HTML page's title (else its first words), or
    the first words of other text."""
    head = resp.body[:65536]
    if not head.strip():
        return "an empty body"
    markup = "html" in resp.headers.get("content-type", "") or head.lstrip().startswith(b"<")
    if markup:
        title = _TITLE.search(head)
        raw = title.group(1) if title and title.group(1).strip() else _MARKUP.sub(b" ", head)
        text = html.unescape(raw.decode(errors="replace"))
    else:
        text = head.decode(errors="replace")
    words = " ".join(text.split())
    if len(words) > _GIST:
        words = words[: _GIST - 1] + "…"
    kind = "an HTML page" if markup else "a body"
    return f'{kind} (not JSON): "{words}"' if words else f"{kind} (not JSON)"


def _bad_answer(method: str, resp: Response, what: str | None = None) -> Exception:
    """An answer that is not Telegram's envelope: a 5xx or 429 is a ServerError (retry with
    backoff), anything else an UnexpectedAnswer (something between us and Telegram answered).
    Either says in one line what came (``what``, default: the gist of the body)."""
    what = what or _gist(resp)
    if resp.status >= 500 or resp.status == 429:
        return ServerError(method, resp.status, what)
    return UnexpectedAnswer(
        method,
        f"the server answered {resp.status} with {what}, not a Bot API answer; check the API "
        "URL (--api-url) and any proxy in between",
        resp.status,
    )


class Bot:
    """A Bot API client.

    - ``token``: the bot token from @BotFather (checked for format up front).
    - ``api_url``: the server, default ``https://api.telegram.org``; point it at a self-hosted
      Bot API server or at FakeTelegram's ``api_url``.
    - ``timeout``: seconds to wait for an answer, default 60; ``getUpdates`` adds its long-poll
      timeout to it.
    - ``pool_size``: keep-alive connections at most, default 100.
    - ``transport``: ``"fast"`` (default, the httptools keep-alive pool), ``"aiohttp"``, or a
      :class:`~tgrunner.protocols.Transport` object to use as it is.
    - ``proxy``: an ``http://`` or ``https://`` proxy URL, default None: the environment's
      (``HTTPS_PROXY``/``ALL_PROXY``, minus ``NO_PROXY``; see
      :func:`~tgrunner.client.transports.proxy_from_env`), else none. With a proxy the
      ``aiohttp`` transport is used, whatever ``transport`` names, so polling and every other
      call go through it.
    - ``ssl_context``: the certificates to trust for an ``https://`` ``api_url``, default the
      system's.

    ``bot.transport`` is the transport in use (``bot.transport_name`` its name: ``"fast"``,
    ``"aiohttp"``, or the class name of a Transport object), ``bot.proxy`` the proxy in use
    (or None).
    - ``flood``: flood control (:mod:`tgrunner.flood.limiter`): a
      :class:`~tgrunner.flood.limiter.FloodControl` to share (with an aiogram or PTB bot's
      session, as the runtime does), :class:`~tgrunner.flood.options.FloodOptions` to build
      one from (without a ``store``: ConfigError; shared buckets are the runtime's), or None
      (default): none, every 429 reaches the caller as RetryAfter. The runtime's Bot has one
      built from ``Settings.flood`` (default reactive).

    A failed request is resent at most once, and only when the method is safe to repeat and
    no byte of an answer had come (:mod:`tgrunner.client.retry`); ``send*`` never is. With
    flood control, a call with a ``chat_id`` is resent as :mod:`tgrunner.flood.limiter` says
    instead (after a 429, a 5xx, or a request that provably never left).

    ``on_call(method, error, seconds)``, default None: called after each :meth:`request`
    (``error`` None when it succeeded), e.g. for metrics; ``seconds`` is the answering
    exchange's (a resend's, after a resend; no wait for flood control), None when no answer
    came. :meth:`observe` sets it with a cheaper channel for the calls that succeed.

    Use ``async with Bot(...) as bot`` or call ``await bot.close()`` when done.
    """

    _on_call: CallObserver | None = None
    _call_times: CallTimes | None = None

    @property
    def on_call(self) -> CallObserver | None:
        """The hook called after each request (see the class doc), default None; setting it
        is ``observe(hook)``."""
        return self._on_call

    @on_call.setter
    def on_call(self, hook: CallObserver | None) -> None:
        self.observe(hook)

    def observe(self, on_call: CallObserver | None, times: CallTimes | None = None) -> None:
        """Report each request to ``on_call``, or the successful calls of the methods listed
        in ``times`` by appending their seconds there (see :mod:`tgrunner.client.timing`);
        None: report nothing (the default)."""
        self._on_call = on_call
        self._call_times = None if on_call is None else times

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 60.0,
        pool_size: int = 100,
        transport: str | Transport = "fast",
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        flood: FloodControl | FloodOptions | None = None,
    ) -> None:
        _check_token(token)
        try:
            api_url = check_api_url(api_url)
        except ValueError as exc:
            raise ConfigError(f"The Bot cannot use that API URL: {exc}.") from None
        self.token = token
        self.api_url = api_url
        self.timeout = timeout
        self.id = int(token.partition(":")[0])
        self._http = self._transport(transport, proxy, ssl_context, pool_size)
        self._prefix = f"/bot{token}/"
        self._me: JSON | None = None
        if isinstance(flood, FloodOptions):
            if flood.store is not None:
                raise ConfigError(
                    f"Bot(flood=FloodOptions(store={flood.store!r})): a Bot does not open a "
                    "flood store itself; give it the runtime's FloodControl, or run the bot "
                    "with tgrunner run --flood-store"
                )
            flood = flood_control(flood)
        self._flood = flood

    def _transport(
        self,
        transport: str | Transport,
        proxy: str | None,
        ssl_context: ssl.SSLContext | None,
        pool_size: int,
    ) -> Transport:
        if not isinstance(transport, str):
            if proxy is not None or ssl_context is not None:
                raise ConfigError(
                    "proxy and ssl_context are options of the transport: give them to the "
                    "Transport object, not to the Bot"
                )
            self.proxy = None
            self.transport_name = type(transport).__name__
            return transport
        name = check_name(transport)
        self.proxy = proxy if proxy is not None else proxy_from_env(self.api_url)
        options: dict[str, Any] = {"pool_size": pool_size, "default_timeout": self.timeout}
        if ssl_context is not None:
            options["ssl_context"] = ssl_context
        if self.proxy:
            name = "aiohttp"
            options["proxy"] = self.proxy
        self.transport_name = name
        log.debug(
            "Bot API client: %s transport to %s%s, %d connections at most",
            name,
            self.api_url,
            f" through the proxy {_safe_url(self.proxy)}" if self.proxy else "",
            pool_size,
        )
        try:
            return transport_class(name)(self.api_url, **options)
        except ValueError as exc:
            raise ConfigError(f"The Bot cannot use {self.api_url!r}: {exc}") from None

    @property
    def me(self) -> JSON | None:
        """The bot's ``getMe`` answer once :meth:`get_me` got it, else None."""
        return self._me

    @property
    def flood(self) -> FloodControl | None:
        """The flood control calls go through, None when there is none (``--flood off``)."""
        return self._flood

    @property
    def transport(self) -> Transport:
        """The transport requests go through."""
        return self._http

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
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        bulk: bool = False,
        paid: bool = False,
    ) -> Any:
        """Like :meth:`call`, with the parameters as a mapping (never changed).

        ``bulk`` marks a broadcast send: with flood control it waits for a slot of the bulk
        bucket (``paid``: of the paid one, for ``allow_paid_broadcast``) first, and a 429
        pauses that bucket too. Both default False.
        """
        # Reported here, not by a wrapper coroutine: a try costs nothing until something is
        # raised. The transport timed the exchange (one clock read fewer than timing it here).
        resp: Response | None = None
        try:
            ctype = _JSON
            if not params:
                body = b""
            elif (plain := _json_body(params)) is not None:
                body = plain
            else:
                body, ctype = await _encode_files(params)
            path = self._prefix + method
            limit = timeout if timeout is not None else self.timeout
            flood = self._flood
            try:
                if flood is not None and params and (chat := params.get("chat_id")) is not None:
                    resp = await self._flood_call(
                        flood, method, chat, path, body, ctype, limit, bulk, paid
                    )
                else:
                    try:
                        resp = await self._http.request(
                            "POST", path, body, content_type=ctype, timeout=limit
                        )
                    except TransportError as exc:
                        if not may_resend(method, exc):
                            raise
                        log.debug(
                            "%s: sending it once more, as it is safe to repeat: %s", method, exc
                        )
                        resp = await self._http.request(
                            "POST", path, body, content_type=ctype, timeout=limit
                        )
            except (TransportError, OSError) as exc:
                raise _network_error(method, self.api_url, exc) from exc
            try:
                payload = orjson.loads(resp.body)
            except orjson.JSONDecodeError:
                raise _bad_answer(method, resp) from None
            if type(payload) is not dict:
                raise _bad_answer(
                    method, resp, f"JSON that is not an object ({type(payload).__name__})"
                )
            if not payload.get("ok"):
                raise telegram_error(method, payload, resp.status)
        except BaseException as exc:
            hook = self._on_call
            if hook is not None:
                hook(method, exc, None if resp is None else resp.elapsed)
            raise
        times = self._call_times
        if times is not None:
            pending = times.pending.get(method)
            if pending is not None:  # the usual case: no call at all
                pending.append(resp.elapsed)
                if len(pending) >= times.every:
                    times.fold(method, pending)
                return payload.get("result")
        hook = self._on_call
        if hook is not None:
            hook(method, None, resp.elapsed)
        return payload.get("result")

    def _flood_call(
        self,
        flood: FloodControl,
        method: str,
        chat: Any,
        path: str,
        body: bytes,
        ctype: str,
        limit: float,
        bulk: bool,
        paid: bool,
    ) -> Awaitable[Response]:
        """The awaitable of the call through flood control. A function of its own, not a
        closure in :meth:`request`: one there would make every local of ``request`` a cell,
        which costs the calls without flood control too."""
        http = self._http
        return flood.call(
            method,
            chat,
            lambda: http.request("POST", path, body, content_type=ctype, timeout=limit),
            bulk=bulk,
            paid=paid,
        )

    async def broadcast(
        self,
        chat_ids: Iterable[int | str],
        text: str | None = None,
        *,
        build: Callable[[Any], Any] | None = None,
        paid: bool = False,
        **params: Any,
    ) -> Any:
        """Send ``text`` (or what ``build(chat_id)`` returns) with the sendMessage ``params`` to
        every chat of ``chat_ids``, at the bulk rate (``paid``: the paid rate, default False),
        from the bot's persistent outbox, resumed after a crash; the
        :class:`~tgrunner.flood.broadcast.Broadcast` handle (``.id``, ``await .progress()``,
        ``await .wait()``). See :func:`tgrunner.flood.broadcast.broadcast`."""
        from tgrunner.flood.broadcast import broadcast

        return await broadcast(self, chat_ids, text, build=build, paid=paid, **params)

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
