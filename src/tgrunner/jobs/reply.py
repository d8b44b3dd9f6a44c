"""Where a job's reply goes, and the Bot API calls that send it.

- :func:`reply_target` reads the message a job answers (a native message dict or
  ``Context``, an aiogram ``Message``, a PTB ``Message``) into a plain dict the queue stores:
  ``chat_id``, ``message_id``, ``message_thread_id`` (only for a message in a forum topic, as
  aiogram's ``answer`` does: elsewhere Telegram refuses a thread id), ``business_connection_id``
  and ``status_message_id`` (the "Processing…" message to edit into the result).
- :class:`Reply` is a result that is more than text: a photo or a document, a parse mode,
  a keyboard.
- :func:`reply_calls` turns a job's result into the calls to make: a reply with
  ``reply_parameters`` (``allow_sending_without_reply``, so a deleted question does not lose
  the answer), or an edit of the status message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tgrunner.errors import JobError

__all__ = ["Call", "Reply", "progress_call", "reply_calls", "reply_target"]

Call = tuple[str, dict[str, Any]]
"""A Bot API method and its parameters."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A job's result as a message.

    - ``text``: the message text, or the caption of a photo or document (default None).
    - ``photo`` / ``document``: a file id, an HTTP URL, ``bytes``, a ``Path`` or an
      :class:`~tgrunner.client.multipart.InputFile` (default None; at most one of the two).
    - ``parse_mode``: ``"HTML"``, ``"MarkdownV2"``… (default None: plain text).
    - ``reply_markup``: a keyboard, as a dict or an aiogram/PTB markup object (default None).
    - ``extra``: more parameters for the send method (default none).
    """

    text: str | None = None
    photo: Any = None
    document: Any = None
    parse_mode: str | None = None
    reply_markup: Any = None
    extra: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.photo is not None and self.document is not None:
            raise JobError("a Reply carries a photo or a document, not both")
        if self.text is None and self.photo is None and self.document is None:
            raise JobError("a Reply needs text, a photo or a document")


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _message_of(message: Any) -> Any:
    """The message itself, given a native Context (its ``message``) or a message."""
    inner = getattr(message, "message", None) if not isinstance(message, dict) else None
    if inner is not None and _field(message, "message_id") is None:
        return inner
    return message


def reply_target(message: Any, status_message: Any = None) -> dict[str, Any] | None:
    """The stored target of a reply to ``message`` (None: no reply), editing
    ``status_message`` when one is given. JobError when either is not a message."""
    if message is None and status_message is None:
        return None
    target: dict[str, Any] = {}
    if message is not None:
        message = _message_of(message)
        chat = _field(message, "chat")
        chat_id = _field(chat, "id") if chat is not None else None
        message_id = _field(message, "message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            raise JobError(
                "reply_to takes the message to answer (a native ctx.message, an aiogram "
                f"Message or a PTB Message), not {type(message).__name__}"
            )
        target = {"chat_id": chat_id, "message_id": message_id}
        thread = _field(message, "message_thread_id")
        if thread is not None and _field(message, "is_topic_message"):
            target["message_thread_id"] = thread
        business = _field(message, "business_connection_id")
        if business is not None:
            target["business_connection_id"] = business
    if status_message is not None:
        status = _message_of(status_message)
        chat = _field(status, "chat")
        chat_id = _field(chat, "id") if chat is not None else None
        status_id = _field(status, "message_id")
        if not isinstance(chat_id, int) or not isinstance(status_id, int):
            raise JobError(
                "status_message takes the message the bot sent (what message.answer() "
                f"returned), not {type(status).__name__}"
            )
        if target and target["chat_id"] != chat_id:
            raise JobError("status_message is in another chat than reply_to")
        target.setdefault("chat_id", chat_id)
        target["status_message_id"] = status_id
    return target


def _markup(value: Any) -> Any:
    """A keyboard as plain data: aiogram's objects dump themselves, PTB's give to_dict()."""
    if value is None or isinstance(value, dict):
        return value
    for name in ("model_dump", "to_dict"):
        dump = getattr(value, name, None)
        if callable(dump):
            return dump(exclude_none=True) if name == "model_dump" else dump()
    raise JobError(f"reply_markup must be a dict or a keyboard object, not {type(value).__name__}")


def _where(target: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"chat_id": target["chat_id"]}
    for key in ("message_thread_id", "business_connection_id"):
        if key in target:
            params[key] = target[key]
    if "message_id" in target:
        params["reply_parameters"] = {
            "message_id": target["message_id"],
            "allow_sending_without_reply": True,
        }
    return params


def _edit(target: dict[str, Any], text: str, rest: dict[str, Any]) -> Call:
    params = {"chat_id": target["chat_id"], "message_id": target["status_message_id"]}
    if "business_connection_id" in target:
        params["business_connection_id"] = target["business_connection_id"]
    return "editMessageText", {**params, "text": text, **rest}


def reply_calls(result: Any, target: dict[str, Any] | None) -> list[Call]:
    """The calls that deliver ``result`` to ``target``: none for a None result or target; a
    text reply for a ``str`` (or an edit of the status message); for a :class:`Reply` with a
    file, the file as a reply, then the status message deleted. JobError for other types."""
    if result is None or target is None:
        return []
    reply = Reply(text=result) if isinstance(result, str) else result
    if not isinstance(reply, Reply):
        raise JobError(
            f"a job returned {type(result).__name__}: return a str, a tgrunner.jobs.Reply, or "
            "None to send nothing"
        )
    rest: dict[str, Any] = dict(reply.extra or {})
    if reply.parse_mode is not None:
        rest["parse_mode"] = reply.parse_mode
    markup = _markup(reply.reply_markup)
    if markup is not None:
        rest["reply_markup"] = markup
    status = target.get("status_message_id")
    if reply.photo is None and reply.document is None:
        assert reply.text is not None  # checked by Reply
        if status is not None:
            return [_edit(target, reply.text, rest)]
        return [("sendMessage", {**_where(target), "text": reply.text, **rest})]
    kind, file = ("photo", reply.photo) if reply.photo is not None else ("document", reply.document)
    params = {**_where(target), kind: file, **rest}
    if reply.text is not None:
        params["caption"] = reply.text
    calls: list[Call] = [("sendPhoto" if kind == "photo" else "sendDocument", params)]
    if status is not None:
        calls.append(("deleteMessage", {"chat_id": target["chat_id"], "message_id": status}))
    return calls


def progress_call(text: str, target: dict[str, Any]) -> Call:
    """The call that shows progress ``text``: an edit of the status message when there is one,
    else a new reply (whose id the caller keeps as the status message)."""
    if "status_message_id" in target:
        return _edit(target, text, {})
    return "sendMessage", {**_where(target), "text": text}
