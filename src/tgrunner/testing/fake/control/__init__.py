"""FakeTelegram's control API: play the bot's users over HTTP, from a script in any language.

FakeTelegram serves it on its own port, under ``/control``. Bot API paths all start with
``/bot<token>/`` or ``/file/bot<token>/``, so the two never collide. Every answer is JSON in
the Bot API's envelope: ``{"ok": true, "result": ...}``, or ``{"ok": false, "error_code": N,
"description": "..."}`` with a 4xx status that says what was wrong (400 bad input, 401 no or
wrong secret, 404 unknown endpoint, user, chat, message or button, 405 wrong HTTP method, 409
username taken, 413 body over 64 KiB). POST bodies are JSON objects (any Content-Type, so
``curl -d`` works); a field the endpoint does not know is refused, not ignored.

Endpoints (``?`` marks an optional field; USER is a user id, or a username as a string)::

    GET  /control
         -> {bot, token, api_url, control_url, secret_required, limits, endpoints}
    GET  /control/users
         -> [{id, chat_id, user}]
    POST /control/users   {first_name, last_name?, username?, language_code? ("en"; null: none)}
         -> {id, chat_id, user}
    GET  /control/chats
         -> [{id, type, title, user_id}]
    POST /control/groups  {title, members? [USER], type? ("group" | "supergroup")}
         -> {id, chat}                       the first member owns it; the bot is an admin
    POST /control/send    {user, text | photo: true, caption?, chat_id?, reply_to?}
         -> {message, cursor}                chat_id defaults to the user's private chat
    POST /control/edit    {user, message_id, text, chat_id?}
         -> {message, cursor}                the user edits their own message
    POST /control/press   {user, message_id, button | data | text, chat_id?, wait? (2, <= 10)}
         -> {callback_query_id, answered, answer, cursor}
    GET  /control/chats/CHAT_ID/replies?after=CURSOR&wait=SECONDS
         -> {chat_id, cursor, replies: [{seq, message_id, kind, text, edited, deleted,
             buttons: [{index, text, callback_data | url | ...}], message}]}

Text is sent as a user types it: ``/start`` becomes a ``bot_command`` entity, ``@name`` a
mention, and so on. ``press`` finds the button by its ``index`` in the message's inline keyboard
(0-based, row by row, as ``buttons`` lists it), its ``callback_data`` (``data``) or its label
(``text``); it waits up to ``wait`` seconds for the bot's ``answerCallbackQuery`` and returns
its parameters (``answer``, null when the bot did not answer in time).

Replies and cursors. Each chat numbers the changes to the bot's messages there: 1, 2, 3...
A message the bot sends gets the next number (its ``seq``), and so does each later edit or
deletion of it, so a reply appears again, in its current version, once it changed. ``cursor``
is the chat's latest number: ``replies?after=CURSOR`` lists only what changed since then, and
``send``, ``edit`` and ``press`` return the cursor from just before their action, so a script
reads exactly the bot's answer to it. ``wait`` (seconds, at most 60, default 0) makes the read
a long poll: it returns as soon as something changed, or after ``wait`` with an empty list.

Security. FakeTelegram listens on loopback by default, and then the control API takes no
secret. With ``secret`` set (``tgrunner fake-telegram`` sets one whenever ``--host`` is not a
loopback address), every control request needs the header ``X-Control-Secret: <secret>``.
"""

from tgrunner.testing.fake.control.api import (
    CONTROL_PATH,
    DEFAULT_PRESS_WAIT,
    ENDPOINTS,
    MAX_BODY,
    MAX_PRESS_WAIT,
    MAX_WAIT,
    SECRET_HEADER,
    ControlAPI,
    Endpoint,
    is_control_path,
)
from tgrunner.testing.fake.control.fields import ControlError

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
