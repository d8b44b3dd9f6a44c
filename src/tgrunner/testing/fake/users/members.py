"""Chat membership as Telegram reports it: the ChatMember object of each status, and the part of
a world that mirrors memberships for ``getChat``/``getChatMember``."""

from __future__ import annotations

import functools
from typing import Protocol, runtime_checkable

from tgrunner.testing.botapi import load_spec
from tgrunner.testing.fake.base import NEWER_REQUIRED_FIELDS
from tgrunner.testing.fake.users.messages import JSON

__all__ = [
    "PRESENT",
    "Directory",
    "as_admin",
    "as_kicked",
    "as_left",
    "as_member",
    "as_restricted",
]

_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
_RESTRICTED_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
PRESENT = frozenset({"creator", "administrator", "member", "restricted"})


@runtime_checkable
class Directory(Protocol):
    """Optional part of a world that answers ``getChat``/``getChatMember``; kept in step with
    the simulation when the world has it (FakeTelegram's ``State`` does)."""

    def register_user(self, user: JSON) -> None: ...

    def set_member(self, chat_id: int, member: JSON) -> None: ...

    def remove_member(self, chat_id: int, user_id: int) -> None: ...


def as_member(user: JSON) -> JSON:
    return {"status": "member", "user": user}


def as_left(user: JSON) -> JSON:
    return {"status": "left", "user": user}


def as_kicked(user: JSON, until: int) -> JSON:
    return {"status": "kicked", "user": user, "until_date": until}


def as_restricted(user: JSON, until: int) -> JSON:
    """A member who may send nothing until the Unix time ``until`` (0: forever)."""
    member: JSON = {"status": "restricted", "user": user, "is_member": True, "until_date": until}
    return member | dict.fromkeys(_RESTRICTED_RIGHTS, False)


def as_admin(user: JSON, chat_type: str, *, can_be_edited: bool = False) -> JSON:
    member: JSON = {
        "status": "administrator",
        "user": user,
        "can_be_edited": can_be_edited,
        "is_anonymous": False,
    }
    member |= dict.fromkeys(_ADMIN_RIGHTS, True)
    member |= _newer_required("ChatMemberAdministrator")
    # Rights that exist only for one kind of chat are sent only there.
    if chat_type == "channel":
        member |= {"can_post_messages": True, "can_edit_messages": True}
    else:
        member["can_pin_messages"] = True
        if chat_type == "supergroup":
            member["can_manage_topics"] = True
    return member


@functools.cache
def _newer_required(type_name: str) -> JSON:
    """Fields newer clients require of ``type_name`` that the shipped spec does not have yet."""
    known = {f.name for f in load_spec().types[type_name].fields}
    return {k: v for k, v in NEWER_REQUIRED_FIELDS.get(type_name, {}).items() if k not in known}
