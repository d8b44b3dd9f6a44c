"""Media a simulated user sends: photos, files, audio and video, stickers, and the
non-file kinds (locations, contacts, polls, dice, venues)."""

from __future__ import annotations

from collections.abc import Iterable

from tgrunner.testing.fake.users.chats import SimChat, Topic
from tgrunner.testing.fake.users.messages import JSON, with_text
from tgrunner.testing.fake.users.person import Person

__all__ = ["MediaActions"]

_DICE_FACES = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}


class MediaActions(Person):
    """Media messages. Each takes ``chat``, ``reply_to`` and ``thread`` as text messages do,
    and returns the Message."""

    # -- files -----------------------------------------------------------------------------

    def send_photo(
        self,
        caption: str | None = None,
        *,
        width: int = 1280,
        height: int = 960,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A photo (default 1280×960) in the sizes Telegram makes of it, with a caption."""
        content: JSON = {"photo": self.population._files.photo(width, height)}
        return self._media(content, caption, chat, reply_to, thread)

    def send_document(
        self,
        file_name: str = "report.pdf",
        *,
        mime_type: str = "application/pdf",
        size: int | None = None,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A file (default ``report.pdf``, ``application/pdf``, a random size)."""
        doc = self.population._files.new("document", size)
        doc |= {"file_name": file_name, "mime_type": mime_type}
        return self._media({"document": doc}, caption, chat, reply_to, thread)

    def send_video(
        self,
        caption: str | None = None,
        *,
        duration: int = 10,
        width: int = 1280,
        height: int = 720,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An MP4 video (default 10 s, 1280×720) with a thumbnail."""
        pop = self.population
        video = pop._files.new("video") | {"width": width, "height": height, "duration": duration}
        video |= {"thumbnail": pop._files.photo(width, height)[0], "mime_type": "video/mp4"}
        return self._media({"video": video}, caption, chat, reply_to, thread)

    def send_audio(
        self,
        title: str = "Song",
        *,
        performer: str = "Artist",
        duration: int = 180,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An MP3 track (default "Song" by "Artist", 180 s)."""
        audio = self.population._files.new("audio") | {"duration": duration, "title": title}
        audio |= {"performer": performer, "file_name": f"{title}.mp3", "mime_type": "audio/mpeg"}
        return self._media({"audio": audio}, caption, chat, reply_to, thread)

    def send_voice(
        self,
        duration: int = 3,
        *,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A voice note (default 3 s, OGG/Opus as Telegram's clients record it)."""
        voice = self.population._files.new("voice") | {
            "duration": duration,
            "mime_type": "audio/ogg",
        }
        return self._media({"voice": voice}, caption, chat, reply_to, thread)

    def send_sticker(
        self,
        emoji: str = "👍",
        *,
        set_name: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A static 512×512 sticker for ``emoji`` (default 👍), from ``set_name`` if given."""
        sticker = self.population._files.new("sticker") | {"type": "regular", "width": 512}
        sticker |= {"height": 512, "is_animated": False, "is_video": False, "emoji": emoji}
        if set_name is not None:
            sticker["set_name"] = set_name
        return self._media({"sticker": sticker}, None, chat, reply_to, thread)

    def send_animation(
        self,
        caption: str | None = None,
        *,
        duration: int = 3,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A GIF-style animation (default 3 s). As in Telegram, ``document`` is set too."""
        anim = self.population._files.new("animation") | {"width": 480, "height": 270}
        anim |= {"duration": duration, "file_name": "animation.mp4", "mime_type": "video/mp4"}
        document = {k: anim[k] for k in ("file_id", "file_unique_id", "file_size", "file_name")}
        content = {"animation": anim, "document": document | {"mime_type": "video/mp4"}}
        return self._media(content, caption, chat, reply_to, thread)

    def send_video_note(
        self,
        duration: int = 5,
        *,
        length: int = 384,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A round video message (default 5 s, 384 px across)."""
        note = self.population._files.new("video_note") | {"length": length, "duration": duration}
        return self._media({"video_note": note}, None, chat, reply_to, thread)

    # -- other kinds -----------------------------------------------------------------------

    def send_location(
        self,
        latitude: float = 51.5007,
        longitude: float = -0.1246,
        *,
        live_period: int | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A point on the map (default: Westminster); live for ``live_period`` seconds if
        given."""
        location: JSON = {"latitude": latitude, "longitude": longitude}
        if live_period is not None:
            location["live_period"] = live_period
        return self._send({"location": location}, chat, reply_to, thread)

    def send_contact(
        self,
        phone_number: str = "+15550100",
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A phone contact. Without ``first_name`` the user shares their own contact (it then
        carries their ``user_id``, as from the "share my number" button)."""
        contact: JSON = {"phone_number": phone_number}
        if first_name is None:
            contact |= {"first_name": self.first_name, "user_id": self.id}
            if "last_name" in self._user:
                contact["last_name"] = self._user["last_name"]
        else:
            contact["first_name"] = first_name
            if last_name is not None:
                contact["last_name"] = last_name
        return self._send({"contact": contact}, chat, reply_to, thread)

    def send_poll(
        self,
        question: str,
        options: Iterable[str],
        *,
        anonymous: bool = True,
        multiple: bool = False,
        correct_option: int | None = None,
        chat: SimChat | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A poll (anonymous by default, one answer). ``correct_option`` makes it a quiz."""
        texts = list(options)
        if not 2 <= len(texts) <= 12:
            raise ValueError("a poll has 2 to 12 options")
        poll: JSON = {
            "id": self.population._query_id(),
            "question": question,
            "options": [
                {"persistent_id": str(i), "text": t, "voter_count": 0} for i, t in enumerate(texts)
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": anonymous,
            "type": "regular" if correct_option is None else "quiz",
            "allows_multiple_answers": multiple,
            "allows_revoting": True,
            "members_only": False,
        }
        if correct_option is not None:
            poll["correct_option_ids"] = [correct_option]
        message = self._send({"poll": poll}, chat, None, thread)
        self.population._poll(message)
        return message

    def send_dice(
        self,
        emoji: str = "🎲",
        *,
        value: int | None = None,
        chat: SimChat | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An animated dice (default 🎲); ``value`` defaults to a random face."""
        faces = _DICE_FACES.get(emoji)
        if faces is None:
            raise ValueError(f"unknown dice emoji {emoji!r}; one of {''.join(_DICE_FACES)}")
        if value is None:
            value = self.population.rng.randint(1, faces)
        elif not 1 <= value <= faces:
            raise ValueError(f"a {emoji} dice shows 1 to {faces}, not {value}")
        return self._send({"dice": {"emoji": emoji, "value": value}}, chat, None, thread)

    def send_venue(
        self,
        title: str = "Big Ben",
        address: str = "London SW1A 0AA",
        *,
        latitude: float = 51.5007,
        longitude: float = -0.1246,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A venue (default: Big Ben). As in Telegram, ``location`` is set too."""
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": location, "title": title, "address": address}
        return self._send({"venue": venue, "location": location}, chat, reply_to, thread)

    # -- internals -------------------------------------------------------------------------

    def _media(
        self,
        content: JSON,
        caption: str | None,
        chat: SimChat | None,
        reply_to: JSON | int | None,
        thread: Topic | int | None,
    ) -> JSON:
        if caption:
            content |= with_text(caption, caption=True)
        return self._send(content, chat, reply_to, thread)
