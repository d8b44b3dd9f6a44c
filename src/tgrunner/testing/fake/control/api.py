"""The control API's server side: :class:`ControlAPI` routes and answers the requests under
``/control`` that FakeTelegram hands it (the endpoints are described in the package)."""

from __future__ import annotations

import contextlib
import hmac
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from tgrunner._http.server import Request, Response
from tgrunner.testing.fake.control.chatlog import ChatLog, button_data
from tgrunner.testing.fake.control.fields import (
    JSON,
    ControlError,
    bounded,
    check_fields,
    integer,
    number,
    query_of,
    string,
    type_name,
)
from tgrunner.testing.fake.world import State

if TYPE_CHECKING:
    from tgrunner.testing.fake.users import SimChat, SimUser

__all__ = [
    "CONTROL_PATH",
    "DEFAULT_PRESS_WAIT",
    "ENDPOINTS",
    "MAX_BODY",
    "MAX_PRESS_WAIT",
    "MAX_WAIT",
    "SECRET_HEADER",
    "ControlAPI",
    "ControlError",
    "Endpoint",
    "is_control_path",
]

log = logging.getLogger(__name__)


CONTROL_PATH = "/control"
"""Where the control API lives on FakeTelegram's port."""
SECRET_HEADER = "X-Control-Secret"
"""The header that carries the control secret, when one is set."""
MAX_BODY = 64 * 1024
"""The largest request body the control API reads, in bytes; larger ones get 413."""
MAX_WAIT = 60.0
"""The longest ``wait`` of a replies long poll, in seconds."""
MAX_PRESS_WAIT = 10.0
"""The longest ``wait`` of ``press`` for the bot's answer, in seconds."""
DEFAULT_PRESS_WAIT = 2.0
"""How long ``press`` waits for the bot's answer when the request does not say, in seconds."""

_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")
_REPLIES = re.compile(r"/control/chats/(-?\d{1,20})/replies")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint, as the index (``GET /control``) lists it."""

    method: str
    path: str
    takes: str
    summary: str


ENDPOINTS = (
    Endpoint("GET", "/control", "", "this index"),
    Endpoint("GET", "/control/users", "", "the simulated users"),
    Endpoint(
        "POST",
        "/control/users",
        "{first_name, last_name?, username?, language_code?}",
        "create a user with a private chat with the bot",
    ),
    Endpoint("GET", "/control/chats", "", "the simulated chats"),
    Endpoint("POST", "/control/groups", "{title, members?, type?}", "create a group"),
    Endpoint(
        "POST",
        "/control/send",
        "{user, text | photo, caption?, chat_id?, reply_to?}",
        "send a message as a user",
    ),
    Endpoint(
        "POST", "/control/edit", "{user, message_id, text, chat_id?}", "edit a user's message"
    ),
    Endpoint(
        "POST",
        "/control/press",
        "{user, message_id, button | data | text, chat_id?, wait?}",
        "press an inline button of the bot's message",
    ),
    Endpoint(
        "GET",
        "/control/chats/{chat_id}/replies",
        "?after=CURSOR&wait=SECONDS",
        "the bot's messages in a chat, edits included; a long poll with wait",
    ),
)
"""Every endpoint of the control API."""


def is_control_path(path: str) -> bool:
    """Whether a request path belongs to the control API (``/control`` or below it)."""
    return path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/")


class _Fake(Protocol):
    """What the control API needs of :class:`~tgrunner.testing.fake.server.FakeTelegram`."""

    state: State

    @property
    def token(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    @property
    def population(self) -> Any: ...

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = ...) -> None: ...


class ControlAPI:
    """The control API of one FakeTelegram; the server hands it every request under
    :data:`CONTROL_PATH`.

    - ``fake``: the FakeTelegram whose users and chats it drives.
    - ``secret`` (default None: none needed): the value every request must carry in the
      ``X-Control-Secret`` header.
    - ``max_body`` (default :data:`MAX_BODY`, 64 KiB): larger bodies get 413.
    """

    def __init__(self, fake: _Fake, *, secret: str | None = None, max_body: int = MAX_BODY):
        self.fake = fake
        self.secret = secret
        self.max_body = max_body
        self._logs: dict[int, ChatLog] = {}
        self._get: dict[str, Callable[[Request], Any]] = {
            "/control": self._index,
            "/control/users": self._list_users,
            "/control/chats": self._list_chats,
        }
        self._post: dict[str, Callable[[JSON], Any]] = {
            "/control/users": self._create_user,
            "/control/groups": self._create_group,
            "/control/send": self._send,
            "/control/edit": self._edit,
            "/control/press": self._press,
        }

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        """Answer one control request: a Response, or an awaitable one for a long poll."""
        try:
            result = self._dispatch(request)
        except ControlError as exc:
            return _error(exc.status, exc.description)
        except Exception:
            log.exception("the control API failed on %s %s", request.method, request.path)
            return _error(500, "the control API failed; the server's log has the traceback")
        if inspect.isawaitable(result):
            return self._finish(result)
        return _ok(result)

    async def _finish(self, pending: Awaitable[Any]) -> Response:
        try:
            return _ok(await pending)
        except ControlError as exc:
            return _error(exc.status, exc.description)
        except Exception:
            log.exception("the control API failed on a long poll")
            return _error(500, "the control API failed; the server's log has the traceback")

    def _dispatch(self, request: Request) -> Any:
        self._authorize(request)
        path = request.path
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        path = path.rstrip("/") or "/"
        method = request.method
        replies = _REPLIES.fullmatch(path)
        allowed = [m for m, table in (("GET", self._get), ("POST", self._post)) if path in table]
        if replies is not None:
            allowed = ["GET"]
        if not allowed:
            raise ControlError(
                404, f"no control endpoint {path}; GET {CONTROL_PATH} lists the endpoints"
            )
        if method not in allowed:
            raise ControlError(405, f"{path} takes {' or '.join(allowed)}, not {method}")
        if method == "GET":
            if replies is not None:
                return self._replies(request, int(replies[1]))
            return self._get[path](request)
        if request.query:
            raise ControlError(400, f"POST {path} takes its fields in a JSON body, not the query")
        return self._post[path](self._body(request))

    def _authorize(self, request: Request) -> None:
        if self.secret is None:
            return
        given = request.headers.get(SECRET_HEADER.lower(), "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            raise ControlError(
                401, f"missing or wrong {SECRET_HEADER} header; send the control secret"
            )

    def _body(self, request: Request) -> JSON:
        body = request.body
        if len(body) > self.max_body:
            raise ControlError(
                413, f"the body has {len(body)} bytes; the control API takes {self.max_body}"
            )
        if not body.strip():
            return {}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ControlError(
                400, f'the body is not valid JSON ({exc}); send an object like {{"user": 1}}'
            ) from None
        if not isinstance(data, dict):
            raise ControlError(400, f"the body must be a JSON object, not {type_name(data)}")
        return data

    # -- lookups -------------------------------------------------------------------------

    @property
    def _state(self) -> State:
        return self.fake.state

    def _users(self) -> list[SimUser]:
        chats = self.fake.population._chats.values()
        return [chat.user for chat in chats if chat.user is not None]

    def _user(self, ref: object, name: str = "user") -> SimUser:
        if isinstance(ref, bool) or not isinstance(ref, int | str):
            raise ControlError(
                400,
                f"field {name!r} must be a user id (an integer) or a username (a string), "
                f"not {type_name(ref)}",
            )
        wanted = ref.lstrip("@").lower() if isinstance(ref, str) else ref
        for user in self._users():
            if user.id == wanted or (user.username or "").lower() == wanted:
                return user
        raise ControlError(
            404, f"unknown user {ref!r}; create one with POST /control/users (GET lists them)"
        )

    def _chat(self, user: SimUser, body: JSON) -> SimChat:
        chat_id = integer(body, "chat_id")
        if chat_id is None:
            return user.chat
        chat: SimChat | None = self.fake.population._chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"unknown chat {chat_id}; GET /control/chats lists them")
        if chat.type == "private" and chat.id != user.id:
            raise ControlError(400, f"chat {chat_id} is another user's private chat with the bot")
        return chat

    def _message(self, chat: SimChat, body: JSON) -> JSON:
        message_id = integer(body, "message_id")
        assert message_id is not None  # a required field, checked by check_fields
        found = self._state.get_message(chat.id, message_id)
        if found is None:
            raise ControlError(404, f"message {message_id} of chat {chat.id} does not exist")
        return found

    def _log(self, chat_id: int) -> ChatLog:
        chat_log = self._logs.get(chat_id)
        if chat_log is None:
            chat_log = self._logs[chat_id] = ChatLog(chat_id)
        chat_log.scan(self._state)
        return chat_log

    # -- endpoints -----------------------------------------------------------------------

    def _index(self, request: Request) -> JSON:
        fake = self.fake
        return {
            "bot": fake.state.bot_user,
            "token": fake.token,
            "api_url": fake.api_url,
            "control_url": fake.api_url + CONTROL_PATH,
            "secret_required": self.secret is not None,
            "limits": {
                "max_body": self.max_body,
                "max_wait": MAX_WAIT,
                "max_press_wait": MAX_PRESS_WAIT,
            },
            "endpoints": [
                {"method": e.method, "path": e.path, "takes": e.takes, "summary": e.summary}
                for e in ENDPOINTS
            ],
        }

    def _list_users(self, request: Request) -> list[JSON]:
        return [_user_json(user) for user in self._users()]

    def _list_chats(self, request: Request) -> list[JSON]:
        return [
            {
                "id": chat.id,
                "type": chat.type,
                "title": chat.title,
                "user_id": chat.user.id if chat.user is not None else None,
            }
            for chat in self.fake.population._chats.values()
        ]

    def _create_user(self, body: JSON) -> JSON:
        allowed = ("first_name", "last_name", "username", "language_code")
        check_fields(body, allowed, required=("first_name",))
        first_name = string(body, "first_name") or ""
        last_name = string(body, "last_name")
        username = string(body, "username")
        language = string(body, "language_code") if "language_code" in body else "en"
        if not first_name.strip() or len(first_name) > 64:
            raise ControlError(400, "first_name must have 1 to 64 characters")
        if username is not None:
            username = username.removeprefix("@")
            if not _USERNAME.fullmatch(username):
                raise ControlError(
                    400, f"username {username!r} must be 5-32 letters, digits or _, from a letter"
                )
            if any((u.username or "").lower() == username.lower() for u in self._users()):
                raise ControlError(409, f"username {username!r} is taken")
        user = self.fake.population.user(
            first_name, last_name=last_name, username=username, language_code=language
        )
        return _user_json(user)

    def _create_group(self, body: JSON) -> JSON:
        check_fields(body, ("title", "members", "type"), required=("title",))
        title = string(body, "title") or ""
        kind = string(body, "type") or "group"
        members = body.get("members", [])
        if not title.strip():
            raise ControlError(400, "title must not be empty")
        if kind not in ("group", "supergroup"):
            raise ControlError(400, f"type must be 'group' or 'supergroup', not {kind!r}")
        if not isinstance(members, list):
            raise ControlError(400, f"members must be an array of users, not {type_name(members)}")
        users = [self._user(ref, "members") for ref in members]
        if len({u.id for u in users}) != len(users):
            raise ControlError(400, "members lists a user twice")
        population = self.fake.population
        chat = (population.group if kind == "group" else population.supergroup)(
            title, members=users
        )
        return {"id": chat.id, "chat": chat.as_dict()}

    def _send(self, body: JSON) -> JSON:
        allowed = ("user", "text", "photo", "caption", "chat_id", "reply_to")
        check_fields(body, allowed, required=("user",))
        user = self._user(body["user"])
        chat = self._chat(user, body)
        text, caption = string(body, "text"), string(body, "caption")
        reply_to = integer(body, "reply_to")
        photo = body.get("photo", False)
        if not isinstance(photo, bool):
            raise ControlError(400, f"field 'photo' must be a boolean, not {type_name(photo)}")
        if (text is None) == (not photo):
            raise ControlError(400, "send takes either text or photo: true (with a caption)")
        if text is not None and caption is not None:
            raise ControlError(400, "caption goes with photo: true; a text message has text")
        if text is not None and not 1 <= len(text) <= 4096:
            raise ControlError(400, "text must have 1 to 4096 characters")
        if caption is not None and len(caption) > 1024:
            raise ControlError(400, "caption must have at most 1024 characters")
        cursor = self._log(chat.id).seq
        with _simulation_errors():
            if text is not None:
                message = user.send(text, chat=chat, reply_to=reply_to)
            else:
                message = user.send_photo(caption, chat=chat, reply_to=reply_to)
        return {"message": message, "cursor": cursor}

    def _edit(self, body: JSON) -> JSON:
        allowed = ("user", "message_id", "text", "chat_id")
        check_fields(body, allowed, required=("user", "message_id", "text"))
        user = self._user(body["user"])
        chat = self._chat(user, body)
        text = string(body, "text") or ""
        if not 1 <= len(text) <= 4096:
            raise ControlError(400, "text must have 1 to 4096 characters")
        message = self._message(chat, body)
        cursor = self._log(chat.id).seq
        with _simulation_errors():
            edited = user.edit(message, text)
        return {"message": edited, "cursor": cursor}

    def _press(self, body: JSON) -> JSON | Awaitable[JSON]:
        allowed = ("user", "message_id", "button", "data", "text", "chat_id", "wait")
        check_fields(body, allowed, required=("user", "message_id"))
        user = self._user(body["user"])
        chat = self._chat(user, body)
        index, data, label = integer(body, "button"), string(body, "data"), string(body, "text")
        wait = number(body, "wait", DEFAULT_PRESS_WAIT, MAX_PRESS_WAIT)
        if sum(x is not None for x in (index, data, label)) != 1:
            raise ControlError(400, "press takes one of button (an index), data or text")
        message = self._message(chat, body)
        if index is not None:
            data = button_data(message, index)
        cursor = self._log(chat.id).seq
        with _simulation_errors():
            if data is not None:
                query = user.press(message, data)
            else:
                query = user.press(message, text=label)
        record = self._state.known_query(str(query["id"]))
        result = {"callback_query_id": query["id"], "answered": False, "answer": None}
        result["cursor"] = cursor

        def answered() -> bool:
            return record is not None and record.get("answer") is not None

        def finish() -> JSON:
            if answered():
                assert record is not None
                answer = dict(record["answer"])
                answer.pop("callback_query_id", None)
                result.update(answered=True, answer=answer)
            return result

        if wait <= 0 or answered():
            return finish()

        async def later() -> JSON:
            with contextlib.suppress(TimeoutError):
                await self.fake.wait_for(answered, wait)
            return finish()

        return later()

    def _replies(self, request: Request, chat_id: int) -> JSON | Awaitable[JSON]:
        query = query_of(request)
        unknown = sorted(set(query) - {"after", "wait"})
        if unknown:
            raise ControlError(400, f"unknown parameter {unknown[0]!r}; replies takes after, wait")
        try:
            after = int(query.get("after") or 0)
            wait = float(query.get("wait") or 0)
        except ValueError:
            raise ControlError(
                400, "after must be an integer (a cursor) and wait a number of seconds"
            ) from None
        if after < 0:
            raise ControlError(400, f"after must be 0 or more (a cursor), not {after}")
        wait = bounded("wait", wait, MAX_WAIT)
        if chat_id not in self._state.chats:
            raise ControlError(404, f"unknown chat {chat_id}; GET /control/chats lists them")
        chat_log = self._log(chat_id)
        if wait <= 0 or chat_log.seq > after:
            return chat_log.result(after)

        def changed() -> bool:
            chat_log.scan(self._state)
            return chat_log.seq > after

        async def later() -> JSON:
            with contextlib.suppress(TimeoutError):
                await self.fake.wait_for(changed, wait)
            return chat_log.result(after)

        return later()


def _user_json(user: SimUser) -> JSON:
    return {"id": user.id, "chat_id": user.chat.id, "user": user.as_dict()}


@contextlib.contextmanager
def _simulation_errors() -> Iterator[None]:
    """The simulation's refusals as 4xx answers: LookupError (no such button or message) is
    404, ValueError (the bot is not in the group, not the bot's message...) is 400."""
    try:
        yield
    except LookupError as exc:
        raise ControlError(404, str(exc)) from None
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None


def _ok(result: Any) -> Response:
    return Response(200, orjson.dumps({"ok": True, "result": result}))


def _error(status: int, description: str) -> Response:
    body = {"ok": False, "error_code": status, "description": description}
    return Response(status, orjson.dumps(body))
