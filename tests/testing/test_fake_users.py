"""Simulated users produce every kind of update, in shapes Telegram's clients accept.

Each update is checked three ways: against the spec's required fields and JSON types (a small
recursive checker below), by aiogram's ``Update.model_validate`` and by PTB's
``Update.de_json``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiogram.types
import pytest
import telegram
from hypothesis import given
from hypothesis import strategies as st

from tgrunner.testing.botapi import Spec, load_spec
from tgrunner.testing.fake.users import (
    ButtonNotFound,
    Population,
    SimChat,
    SimUser,
    parse_entities,
    utf16_len,
)
from tgrunner.testing.fake.world import State

SPEC = load_spec()
KINDS = SPEC.update_kinds()
NOW = 1_700_000_000

# -- a checker of objects against the spec -------------------------------------------------

_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
    "String": lambda v: isinstance(v, str),
}
# Fields newer clients require (aiogram 3.31 targets Bot API 10.3) that the shipped spec lacks;
# the fake sends them, so the checker accepts exactly these, and only while the spec lacks them.
NEWER_THAN_SPEC = {("ChatMemberAdministrator", "can_send_welcome_messages"): "Boolean"}
# Discriminators are documented as 'always "value"' (ChatMember.status, ReactionType.type...).
_ALWAYS = re.compile(r'always "([^"]+)"')


def spec_errors(spec: Spec, type_expr: str, value: Any, path: str = "$") -> list[str]:
    """Where ``value`` breaks ``type_expr``: missing required fields, unknown fields, wrong
    JSON types, wrong discriminators; recursively. An empty list means it conforms."""
    if type_expr.startswith("Array of "):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {value!r}"]
        inner = type_expr.removeprefix("Array of ")
        return [e for i, v in enumerate(value) for e in spec_errors(spec, inner, v, f"{path}[{i}]")]
    check = _PRIMITIVES.get(type_expr)
    if check is not None:
        return [] if check(value) else [f"{path}: expected {type_expr}, got {value!r}"]
    typedef = spec.types[type_expr]
    if typedef.subtypes:
        # A value of an abstract type must conform to one of its concrete types.
        tries = [spec_errors(spec, sub, value, f"{path}<{sub}>") for sub in typedef.subtypes]
        if any(not errs for errs in tries):
            return []
        return min(tries, key=len)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_expr} object, got {value!r}"]
    errors: list[str] = []
    fields = {f.name: f for f in typedef.fields}
    for name, f in fields.items():
        if f.required and name not in value:
            errors.append(f"{path}.{name}: required by {type_expr}, missing")
    for name, v in value.items():
        f = fields.get(name)
        newer = NEWER_THAN_SPEC.get((type_expr, name))
        if f is None and newer is not None:
            errors.extend(spec_errors(spec, newer, v, f"{path}.{name}"))
            continue
        if f is None:
            errors.append(f"{path}.{name}: not a field of {type_expr}")
            continue
        tries = [spec_errors(spec, t, v, f"{path}.{name}") for t in f.types]
        if all(tries):
            errors.extend(min(tries, key=len))
        fixed = _ALWAYS.search(f.description)
        if fixed and f.types == ("String",) and v != fixed.group(1):
            errors.append(f"{path}.{name}: always {fixed.group(1)!r} in {type_expr}, got {v!r}")
    return errors


def test_checker_catches_what_it_should() -> None:
    user = {"id": 1, "is_bot": False, "first_name": "A"}
    assert spec_errors(SPEC, "User", user) == []
    assert spec_errors(SPEC, "User", {"id": 1, "is_bot": False})  # first_name missing
    assert spec_errors(SPEC, "User", user | {"id": "1"})  # wrong type
    assert spec_errors(SPEC, "User", user | {"from_user": user})  # unknown field
    assert spec_errors(SPEC, "ChatMember", {"status": "left", "user": user}) == []
    assert spec_errors(SPEC, "ChatMember", {"status": "gone", "user": user})


# -- clients ---------------------------------------------------------------------------------

AIOGRAM_KINDS = frozenset(aiogram.types.Update.model_fields) - {"update_id"}
PTB_KINDS = frozenset(inspect.signature(telegram.Update).parameters) - {"update_id", "api_kwargs"}
# Kinds newer than an installed client: it keeps them as extra data, checked below.
UNKNOWN = {
    "aiogram": sorted(set(KINDS) - AIOGRAM_KINDS),
    "ptb": sorted(set(KINDS) - PTB_KINDS),
}


def test_clients_know_nearly_every_kind() -> None:
    for client, kinds in UNKNOWN.items():
        assert len(kinds) <= 3, f"{client} is far behind the spec: {kinds}"


def check_with_clients(update: dict[str, Any], bot: telegram.Bot) -> None:
    (kind,) = set(update) - {"update_id"}
    parsed = aiogram.types.Update.model_validate(update)
    if kind in AIOGRAM_KINDS:
        assert getattr(parsed, kind) is not None
    else:
        assert (parsed.model_extra or {}).get(kind) == update[kind]
    ptb = telegram.Update.de_json(update, bot)
    assert ptb.update_id == update["update_id"]
    if kind in PTB_KINDS:
        assert getattr(ptb, kind) is not None
    else:
        assert ptb.api_kwargs.get(kind) == update[kind]


# -- a world to act in -------------------------------------------------------------------------


@dataclass
class Scene:
    state: State
    pop: Population
    alice: SimUser
    bob: SimUser
    group: SimChat
    supergroup: SimChat
    forum: SimChat
    channel: SimChat

    def bot_says(self, chat: SimChat, text: str, keyboard: list[list[dict[str, Any]]]) -> dict:
        """A message of the bot with an inline keyboard, stored as sendMessage would."""
        message = {
            "message_id": self.state.next_message_id(chat.id),
            "from": self.state.bot_user,
            "chat": chat.as_dict(),
            "date": self.state.now(),
            "text": text,
            "reply_markup": {"inline_keyboard": keyboard},
        }
        self.state.record_bot_message(message)
        return message

    def bot_poll(self, chat: SimChat) -> dict:
        poll = {
            "id": "5000000000000000001",
            "question": "Lunch?",
            "options": [
                {"persistent_id": str(i), "text": t, "voter_count": 0}
                for i, t in enumerate(["Pizza", "Sushi", "Salad"])
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": False,
            "type": "regular",
            "allows_multiple_answers": True,
            "allows_revoting": True,
            "members_only": False,
        }
        message = {
            "message_id": self.state.next_message_id(chat.id),
            "from": self.state.bot_user,
            "chat": chat.as_dict(),
            "date": self.state.now(),
            "poll": poll,
        }
        self.state.record_bot_message(message)
        return message


@pytest.fixture
def scene() -> Scene:
    state = State(seed=7, clock=lambda: float(NOW))
    # Subscribe to every kind, so the queue shows what the bot would receive.
    state.set_allowed_updates(state.primary, list(KINDS))
    pop = Population(state, seed=7)
    alice = pop.user("Alice", last_name="Liddell", username="alice_l")
    bob = pop.user("Bob", language_code=None, is_premium=True)
    return Scene(
        state,
        pop,
        alice,
        bob,
        pop.group("Family", members=[alice, bob]),
        pop.supergroup("Team", members=[alice, bob], username="team_chat"),
        pop.forum("Forum", members=[alice, bob]),
        pop.channel("News", username="news_channel", owner=alice),
    )


def _business(s: Scene) -> dict:
    s.bob.connect_business()
    return s.alice.business_send("do you ship to Wonderland?", to=s.bob)


ACTIONS: dict[str, Callable[[Scene], object]] = {
    "message": lambda s: s.alice.send("/start@" + s.state.bot_user["username"] + " now"),
    "edited_message": lambda s: s.alice.edit(s.alice.send("helo"), "hello"),
    "channel_post": lambda s: s.channel.post("Breaking #news", signature="Alice"),
    "edited_channel_post": lambda s: s.channel.edit_post(s.channel.post("typo"), "fixed"),
    "business_connection": lambda s: s.bob.connect_business(),
    "business_message": _business,
    "edited_business_message": lambda s: s.alice.business_edit(_business(s), "to Oz?"),
    "deleted_business_messages": lambda s: s.alice.business_delete(_business(s)),
    "guest_message": lambda s: s.alice.guest_send(
        "@" + s.state.bot_user["username"] + " weather?", chat=s.supergroup
    ),
    "message_reaction": lambda s: s.bob.react(s.alice.send("hi all", chat=s.group), "👍"),
    "message_reaction_count": lambda s: s.channel.reaction_count(
        s.channel.post("vote"), {"🔥": 3, "👍": 1}
    ),
    "inline_query": lambda s: s.alice.inline_query("cats", offset="20"),
    "chosen_inline_result": lambda s: s.alice.choose_inline_result("r1", "cats", has_keyboard=True),
    "callback_query": lambda s: s.alice.press(
        s.bot_says(s.alice.chat, "Sure?", [[{"text": "Yes", "callback_data": "yes"}]]), "yes"
    ),
    "shipping_query": lambda s: s.alice.shipping_query("order-1"),
    "pre_checkout_query": lambda s: s.alice.pre_checkout("order-1", total_amount=50),
    "purchased_paid_media": lambda s: s.alice.purchase_paid_media("album-1"),
    "poll": lambda s: s.pop.poll_update(s.bot_poll(s.group), close=True),
    "poll_answer": lambda s: s.alice.answer_poll(s.bot_poll(s.group), [0, 2]),
    "my_chat_member": lambda s: s.alice.block_bot(),
    "chat_member": lambda s: s.pop.user("Carol").join(s.supergroup),
    "chat_join_request": lambda s: s.pop.user("Dan").request_join(s.channel, bio="hi"),
    "chat_boost": lambda s: s.bob.boost(s.channel),
    "removed_chat_boost": lambda s: (s.bob.boost(s.supergroup), s.bob.remove_boost(s.supergroup)),
    "managed_bot": lambda s: s.alice.create_managed_bot("Helper"),
}


def test_every_kind_in_the_spec_has_an_action() -> None:
    missing = [k for k in KINDS if k not in ACTIONS]
    assert not missing, f"update kinds without a simulated-user action: {missing}"
    assert set(ACTIONS) <= set(KINDS), set(ACTIONS) - set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_produced_and_parses(kind: str, scene: Scene) -> None:
    action = ACTIONS.get(kind)
    if action is None:
        pytest.fail(f"no simulated-user action produces {kind!r}: add one to the users package")
    before = len(scene.pop.updates)
    action(scene)
    produced = scene.pop.updates[before:]
    assert produced, f"{kind}: the action produced no update"
    assert set(produced[-1]) == {"update_id", kind}
    bot = telegram.Bot(scene.state.token)
    for update in produced:
        assert len(update) == 2, update
        errors = spec_errors(SPEC, "Update", update)
        assert not errors, "\n".join(errors)
        check_with_clients(update, bot)
    assert list(scene.state.primary.pending)[-len(produced) :] == produced
    ids = [u["update_id"] for u in produced]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_more_actions_conform(scene: Scene) -> None:
    s = scene
    alice, bob = s.alice, s.bob
    topic = s.forum.create_topic("Releases")
    first = alice.send("see https://example.com/x, mail a@b.io", chat=s.supergroup)
    alice.send_photo("look at #this", chat=s.forum, thread=topic)
    alice.send_document(caption="the report", reply_to=alice.send("report?"))
    for act in (
        alice.send_video,
        alice.send_audio,
        alice.send_voice,
        alice.send_sticker,
        alice.send_animation,
        alice.send_video_note,
        alice.send_location,
        alice.send_contact,
        alice.send_dice,
        alice.send_venue,
    ):
        act()
    poll = alice.send_poll("Best?", ["A", "B"], anonymous=True, chat=s.group)
    bob.answer_poll(poll, [1])
    bob.reply(first, "agreed")
    bob.forward(first, s.group)
    alice.command("help", "me", chat=s.group, mention_bot=True)
    alice.pay("order-9", currency="USD", total_amount=1299)
    s.supergroup.promote(bob, title="Deputy")
    s.supergroup.restrict(bob)
    s.supergroup.ban(bob)
    s.supergroup.unban(bob)
    s.group.kick_bot()
    s.group.add_bot(by=alice, admin=True)
    alice.leave(s.group)
    alice.block_bot()
    alice.unblock_bot()
    bob.connect_business()
    bob.disconnect_business()
    alice.press_inline("AgAAAB2", "more")
    bot = telegram.Bot(s.state.token)
    for update in s.pop.updates:
        errors = spec_errors(SPEC, "Update", update)
        assert not errors, "\n".join(errors)
        check_with_clients(update, bot)


# -- ids and history ---------------------------------------------------------------------------


def test_ids_look_like_telegrams(scene: Scene) -> None:
    for user in (scene.alice, scene.bob):
        assert 0 < user.id < 2**52
        assert user.chat.id == user.id
    assert -(10**10) < scene.group.id < 0
    for chat in (scene.supergroup, scene.forum, scene.channel):
        assert str(chat.id).startswith("-100")
        assert len(str(chat.id)) == 14


def test_messages_are_stored_for_the_bot(scene: Scene) -> None:
    m1 = scene.alice.send("one")
    m2 = scene.alice.send("two")
    assert m2["message_id"] == m1["message_id"] + 1
    assert scene.state.get_message(scene.alice.id, m2["message_id"]) == m2
    edited = scene.alice.edit(m1, "uno")
    assert edited["edit_date"] == NOW
    assert scene.state.get_message(scene.alice.id, m1["message_id"])["text"] == "uno"


def test_same_seed_same_world() -> None:
    def run(seed: int) -> list[dict]:
        pop = Population(State(seed=seed, clock=lambda: float(NOW)), seed=seed)
        pop.user("Alice").send_photo("x")
        return pop.updates

    assert run(3) == run(3)
    assert run(3) != run(4)


# -- entities ----------------------------------------------------------------------------------


def utf16_slice(text: str, entity: dict) -> str:
    data = text.encode("utf-16-le")
    start, length = entity["offset"] * 2, entity["length"] * 2
    return data[start : start + length].decode("utf-16-le")


def test_entities_count_utf16_units_after_emoji() -> None:
    text = "👋🏽 /start@my_bot go #tag @alice_l 🎉 https://t.me/x, me@mail.com $USD"
    found = {e["type"]: utf16_slice(text, e) for e in parse_entities(text)}
    assert found == {
        "bot_command": "/start@my_bot",
        "hashtag": "#tag",
        "mention": "@alice_l",
        "url": "https://t.me/x",
        "email": "me@mail.com",
        "cashtag": "$USD",
    }
    assert parse_entities(text)[0]["offset"] == 5  # 👋 and 🏽 are two units each
    assert utf16_len("👋🏽a") == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", [("bot_command", "/start")]),
        ("a/b", []),  # a path, not a command
        ("/start@bot_name", [("bot_command", "/start@bot_name")]),
        ("hi @ab", []),  # too short for a username
        ("bob@example.com", [("email", "bob@example.com")]),
        ("#123 #a1", [("hashtag", "#a1")]),
        ("file.txt and example.com.", [("url", "example.com")]),
        ("(see https://x.io/a_(b))", [("url", "https://x.io/a_(b)")]),
    ],
)
def test_entity_rules(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(e["type"], utf16_slice(text, e)) for e in parse_entities(text)] == expected


_COMMANDS = st.from_regex(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", fullmatch=True)


@given(before=st.text(), command=_COMMANDS, after=st.text())
def test_command_entity_slices_out_the_command(before: str, command: str, after: str) -> None:
    text = f"{before} {command} {after}"
    entities = parse_entities(text)
    commands = [utf16_slice(text, e) for e in entities if e["type"] == "bot_command"]
    assert command in commands
    for e in entities:
        assert e["offset"] >= 0
        assert e["offset"] + e["length"] <= utf16_len(text)


def test_message_text_gets_entities(scene: Scene) -> None:
    msg = scene.alice.command("start", "ref-42", chat=scene.group, mention_bot=True)
    [entity] = msg["entities"]
    assert utf16_slice(msg["text"], entity) == "/start@" + scene.state.bot_user["username"]
    assert "entities" not in scene.alice.send("plain words")
    assert scene.alice.send_photo("#cats")["caption_entities"][0]["type"] == "hashtag"


# -- buttons -----------------------------------------------------------------------------------

KEYBOARD = [
    [{"text": "Yes", "callback_data": "answer:yes"}, {"text": "No", "callback_data": "answer:no"}],
    [{"text": "Docs", "url": "https://example.com"}],
]


def test_press_by_data_and_by_text(scene: Scene) -> None:
    message = scene.bot_says(scene.alice.chat, "Sure?", KEYBOARD)
    by_data = scene.alice.press(message, "answer:no")
    by_text = scene.alice.press(message, text="Yes")
    assert by_data["data"] == "answer:no"
    assert by_text["data"] == "answer:yes"
    assert by_data["message"]["message_id"] == message["message_id"]
    assert by_data["chat_instance"] == by_text["chat_instance"]
    assert by_data["id"] != by_text["id"]
    assert scene.state.known_query(by_text["id"]) is not None


def test_press_uses_the_current_keyboard(scene: Scene) -> None:
    message = scene.bot_says(scene.alice.chat, "Sure?", KEYBOARD)
    edited = message | {
        "reply_markup": {"inline_keyboard": [[{"text": "Done", "callback_data": "d"}]]}
    }
    scene.state.remember_message(edited)
    assert scene.alice.press(message, "d")["message"]["reply_markup"] == edited["reply_markup"]
    with pytest.raises(ButtonNotFound):
        scene.alice.press(message, "answer:yes")


def test_press_explains_a_missing_button(scene: Scene) -> None:
    message = scene.bot_says(scene.group, "Sure?", KEYBOARD)
    with pytest.raises(ButtonNotFound, match=r"data 'maybe'.*\('Yes', 'answer:yes'\)"):
        scene.alice.press(message, "maybe")
    with pytest.raises(ButtonNotFound, match="text 'Docs'"):  # a URL button sends no query
        scene.alice.press(message, text="Docs")
    with pytest.raises(ValueError, match="bot's own messages"):
        scene.alice.press(scene.alice.send("mine"), "x")
    with pytest.raises(TypeError):
        scene.alice.press(message)


# -- behaviour ---------------------------------------------------------------------------------


def test_poll_votes_are_counted(scene: Scene) -> None:
    poll_msg = scene.bot_poll(scene.group)
    answer = scene.alice.answer_poll(poll_msg, [0, 2])
    assert answer["option_persistent_ids"] == ["0", "2"]
    scene.bob.answer_poll(poll_msg["poll"]["id"], [2])
    scene.alice.answer_poll(poll_msg, [])  # retracted
    with pytest.raises(ValueError, match=r"options 0\.\.2"):
        scene.alice.answer_poll(poll_msg, [5])
    state = scene.pop.poll_update(poll_msg, close=True)
    assert [o["voter_count"] for o in state["options"]] == [0, 0, 1]
    assert state["total_voter_count"] == 1
    assert state["is_closed"] is True
    with pytest.raises(ValueError, match="closed"):
        scene.alice.answer_poll(poll_msg, [0])


def test_reactions_carry_the_previous_ones(scene: Scene) -> None:
    msg = scene.alice.send("hi", chat=scene.group)
    first = scene.bob.react(msg, "👍")
    second = scene.bob.react(msg, "🔥", "🎉")
    cleared = scene.bob.react(msg)
    assert first["old_reaction"] == []
    assert second["old_reaction"] == first["new_reaction"]
    assert cleared["new_reaction"] == []
    with pytest.raises(ValueError, match="anonymous"):
        scene.bob.react(scene.channel.post("p"), "👍")


def test_membership_changes(scene: Scene) -> None:
    carol = scene.pop.user("Carol")
    joined = carol.join(scene.group)
    service = scene.pop.updates[-2]["message"]
    assert service["new_chat_members"] == [carol.as_dict()]
    assert (joined["old_chat_member"]["status"], joined["new_chat_member"]["status"]) == (
        "left",
        "member",
    )
    banned = scene.supergroup.ban(scene.bob)
    assert banned["from"]["id"] == scene.alice.id  # the owner, first of the members
    assert scene.state.members[scene.supergroup.id][scene.bob.id]["status"] == "kicked"
    with pytest.raises(ValueError, match="not a member"):
        scene.bob.send("let me in", chat=scene.supergroup)
    blocked = scene.alice.block_bot()
    assert blocked["new_chat_member"] == {
        "status": "kicked",
        "user": scene.state.bot_user,
        "until_date": 0,
    }
    scene.alice.send("/start")  # writing to a blocked bot restarts it first
    kinds = [next(k for k in u if k != "update_id") for u in scene.pop.updates[-2:]]
    assert kinds == ["my_chat_member", "message"]


def test_bot_must_be_in_the_chat(scene: Scene) -> None:
    quiet = scene.pop.group("Quiet", members=[scene.alice], with_bot=False)
    with pytest.raises(ValueError, match="add_bot"):
        scene.alice.send("anyone?", chat=quiet)
    carol = scene.pop.user("Carol")
    before = len(scene.pop.updates)
    carol.join(quiet)  # nothing reaches a bot outside the chat...
    assert len(scene.pop.updates) == before
    added = quiet.add_bot()
    assert added["new_chat_member"]["status"] == "member"
    assert scene.alice.send("hello bot", chat=quiet)["chat"]["id"] == quiet.id
    before = len(scene.pop.updates)
    carol.leave(quiet)  # ...and a plain member gets the service message, not chat_member
    assert [set(u) - {"update_id"} for u in scene.pop.updates[before:]] == [{"message"}]
    assert quiet.status(carol) == "left"


def test_forum_topics_and_replies(scene: Scene) -> None:
    topic = scene.forum.create_topic("Bugs")
    msg = scene.bob.send("it crashes", chat=scene.forum, thread=topic)
    assert msg["message_thread_id"] == topic.id
    assert msg["is_topic_message"] is True
    assert msg["reply_to_message"]["forum_topic_created"]["name"] == "Bugs"
    reply = scene.alice.reply(msg, "which version?")
    assert reply["message_thread_id"] == topic.id
    assert reply["reply_to_message"]["message_id"] == msg["message_id"]
    assert "reply_to_message" not in reply["reply_to_message"]


def test_forward_keeps_the_origin(scene: Scene) -> None:
    post = scene.channel.post("news")
    fwd = scene.bob.forward(post)
    assert fwd["forward_origin"]["type"] == "channel"
    assert fwd["forward_origin"]["chat"]["id"] == scene.channel.id
    again = scene.alice.forward(fwd)
    assert again["forward_origin"] == fwd["forward_origin"]
    assert again["text"] == "news"


def test_business_messages_both_ways(scene: Scene) -> None:
    connection = scene.bob.connect_business()
    assert connection["user_chat_id"] == scene.bob.id
    incoming = scene.alice.business_send("hello shop", to=scene.bob)
    outgoing = scene.bob.business_send("hello customer", to=scene.alice)
    for msg in (incoming, outgoing):
        assert msg["business_connection_id"] == connection["id"]
        assert msg["chat"]["id"] == scene.alice.id
    deleted = scene.bob.business_delete(incoming, outgoing)
    assert deleted["message_ids"] == [incoming["message_id"], outgoing["message_id"]]
    scene.bob.disconnect_business()
    with pytest.raises(ValueError, match="business"):
        scene.alice.business_send("hello?", to=scene.bob)
