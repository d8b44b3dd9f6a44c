"""An aiogram ``BaseSession`` that sends the Bot's calls through tgrunner's HTTP client.

aiogram's :class:`~aiogram.client.session.aiohttp.AiohttpSession` spends most of a call's CPU
in aiohttp. :class:`TgrunnerSession` keeps everything else of aiogram's request path: request
middlewares, ``Default`` bot properties, ``prepare_value`` for every parameter, files as
multipart parts, and ``check_response`` on the answer, so aiogram raises its own exceptions
(``TelegramBadRequest``, ``TelegramRetryAfter`` with ``retry_after``, …) exactly as it does with
its own session. Only the bytes on the wire differ: a call without files is sent as one JSON
object instead of form fields, which the Bot API reads the same way.

::

    bot = Bot(TOKEN, session=TgrunnerSession())
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncGenerator, Awaitable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import orjson
from aiogram.client.session.base import DEFAULT_TIMEOUT, BaseSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile

import tgrunner.frontends.aiogram.compat as compat
from tgrunner.client import calls
from tgrunner.client.multipart import InputFile as RawFile
from tgrunner.client.multipart import encode_multipart
from tgrunner.client.transports.fast import (
    ClientResponse,
    HTTPClient,
    TransportError,
    TransportTimeout,
)
from tgrunner.errors import FloodLimited
from tgrunner.flood.limiter import FloodControl

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["TgrunnerSession"]

_JSON = "application/json"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _through(
    flood: FloodControl,
    name: str,
    chat_id: Any,
    client: HTTPClient,
    path: str,
    body: bytes,
    content_type: str,
    limit: float,
) -> Awaitable[ClientResponse]:
    """The call through flood control; a function of its own, as a closure in make_request
    would make its locals cells, which costs the calls without a chat too."""
    return flood.call(
        name,
        chat_id,
        lambda: client.request("POST", path, body, content_type=content_type, timeout=limit),
    )


class TgrunnerSession(BaseSession):
    """aiogram's session interface on tgrunner's keep-alive HTTP client.

    - ``api``: the Bot API server, default Telegram's (``TelegramAPIServer.from_base(url)`` for
      a self-hosted server or FakeTelegram).
    - ``timeout``: seconds per call, default 60 (aiogram's default).
    - ``pool_size``: keep-alive connections at most, default 100 (aiogram's default ``limit``).
    - ``json_loads`` / ``json_dumps``: default orjson; ``json_dumps`` serialises nested values
      of multipart requests, as in aiogram's own session.

    - ``flood``: a :class:`~tgrunner.flood.limiter.FloodControl` every call with a
      ``chat_id`` goes through (the attribute ``session.flood`` may be set later), default
      None: none. The runtime gives the session its process's, so that the aiogram bot's
      calls are paced, ordered and resent like tgrunner's own; over a bound, the call raises
      aiogram's ``TelegramRetryAfter``.

    The connection pool opens on the first call; :meth:`close` closes it, and a later call
    opens a new one (as ``AiohttpSession`` does). File downloads (``bot.download``,
    ``URLInputFile``) go through a short-lived aiohttp session, as they are rare.
    """

    def __init__(
        self,
        api: TelegramAPIServer = PRODUCTION,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = 100,
        json_loads: Any = orjson.loads,
        json_dumps: Any = _dumps,
        flood: FloodControl | None = None,
    ) -> None:
        super().__init__(api=api, json_loads=json_loads, json_dumps=json_dumps, timeout=timeout)
        self.pool_size = pool_size
        self.flood = flood
        self._client: HTTPClient | None = None
        # Pools of servers ``api`` pointed at before; close() ends them.
        self._retired: list[HTTPClient] = []
        self._bound: TelegramAPIServer | None = None
        self._origin = ""
        self._template = ""
        self._paths: dict[tuple[str, str], str] = {}
        self._responses: dict[type, Any] = {}

    def __repr__(self) -> str:
        return f"TgrunnerSession(api={self.api.base!r})"

    # -- where calls go ---------------------------------------------------------------------

    def _path(self, token: str, method: str) -> tuple[HTTPClient, str]:
        api = self.api
        if api is not self._bound:
            # ``api`` may be reassigned at any time, as with aiogram's sessions.
            self._bind(api)
        client = self._client
        if client is None:
            client = self._client = HTTPClient(
                self._origin, pool_size=self.pool_size, default_timeout=self.timeout
            )
        path = self._paths.get((token, method))
        if path is None:
            path = self._template.format(token=token, method=method)
            if len(self._paths) < 4096:
                self._paths[(token, method)] = path
        return client, path

    def _bind(self, api: TelegramAPIServer) -> None:
        parts = urlsplit(api.base)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin != self._origin and self._client is not None:
            self._retired.append(self._client)
            self._client = None
        self._origin = origin
        self._template = api.base[len(origin) :]
        self._paths = {}
        self._bound = api

    # -- the request ------------------------------------------------------------------------

    async def _encode(self, bot: Bot, method: TelegramMethod[Any]) -> tuple[bytes, str]:
        files: dict[str, InputFile] = {}
        fields: dict[str, Any] = {}
        # None values are dropped below anyway (nested ones by prepare_value), so pydantic
        # need not produce them.
        for key, value in method.model_dump(warnings=False, exclude_none=True).items():
            prepared = compat.prepare_unencoded(self, value, bot, files)
            # aiogram's form builder leaves out empty strings too.
            if prepared is None or prepared == "":
                continue
            fields[key] = prepared
        if not files:
            return orjson.dumps(fields), _JSON
        form: dict[str, Any] = {
            key: value if isinstance(value, str) else self.json_dumps(value)
            for key, value in fields.items()
        }
        for key, file in files.items():
            data = b"".join([chunk async for chunk in file.read(bot)])
            form[key] = RawFile(data, file.filename or key)
        return encode_multipart(form)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,
    ) -> TelegramType:
        name = compat.method_name(method)
        client, path = self._path(bot.token, name)
        body, content_type = await self._encode(bot, method)
        limit = self.timeout if timeout is None else timeout
        flood = self.flood
        chat_id = getattr(method, "chat_id", None) if flood is not None else None
        request: Awaitable[ClientResponse]
        if flood is None or chat_id is None:
            request = client.request("POST", path, body, content_type=content_type, timeout=limit)
        else:
            request = _through(flood, name, chat_id, client, path, body, content_type, limit)
        try:
            resp = await (request if calls.on_call is None else calls.reported(name, request))
        except FloodLimited as exc:
            # aiogram's own TelegramRetryAfter, from a 429 answer as Telegram would give it.
            content = orjson.dumps(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: {exc.description}",
                    "parameters": {"retry_after": math.ceil(exc.retry_after or 0)},
                }
            ).decode()
            self.check_response(bot=bot, method=method, status_code=429, content=content)
            raise  # check_response raised; never reached
        except TransportTimeout as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except (TransportError, OSError) as exc:
            raise TelegramNetworkError(
                method=method, message=f"{type(exc).__name__}: {exc}"
            ) from exc
        content = resp.body.decode("utf-8", "replace")
        if resp.status == 200:
            # The common case, as check_response parses it, without its per-call lookup of
            # the parametrised Response model (a quarter of the cost).
            model = self._responses.get(type(method))
            if model is None:
                returning = compat.method_returns(method)
                model = self._responses[type(method)] = Response[returning]  # type: ignore[valid-type]
            try:
                ok = model.model_validate(self.json_loads(content), context=compat.bot_context(bot))
            except Exception:  # check_response below raises aiogram's own error for it
                ok = None
            if ok is not None and ok.ok:
                return cast(TelegramType, ok.result)
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=content
        )
        return cast(TelegramType, response.result)

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        import certifi
        from aiohttp import ClientSession, ClientTimeout, TCPConnector

        connector = TCPConnector(ssl=ssl.create_default_context(cafile=certifi.where()))
        async with (
            ClientSession(connector=connector) as session,
            session.get(
                url,
                timeout=ClientTimeout(total=timeout),
                headers=headers or {},
                raise_for_status=raise_for_status,
            ) as resp,
        ):
            async for chunk in resp.content.iter_chunked(chunk_size):
                yield chunk

    async def close(self) -> None:
        """Close the connection pool; safe to call twice. A later call opens a new one."""
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._retired.clear()
        self._client = None
        for client in clients:
            await client.close()
