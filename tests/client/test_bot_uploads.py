"""Uploads through the native Bot API client against FakeTelegram: every kind of file goes as
multipart, files nested in ``media`` are attached without changing the caller's objects, and
files are read off the event loop."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tgrunner.client.bot import Bot, InputFile
from tgrunner.testing import FakeTelegram


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


@pytest.mark.parametrize("kind", ["bytes", "inputfile", "path", "stream"])
async def test_uploads_go_as_multipart(
    tg: FakeTelegram, bot: Bot, tmp_path: Path, kind: str
) -> None:
    alice = tg.user("Alice")
    data = bytes(range(256)) * 4
    path = tmp_path / "pic.jpg"
    path.write_bytes(data)
    photo = {
        "bytes": data,
        "inputfile": InputFile(data, "pic.jpg"),
        "path": path,
        "stream": io.BytesIO(data),
    }[kind]
    msg = await bot.send_photo(alice.chat.id, photo, caption="look")
    assert msg["caption"] == "look"
    file = await bot.call("getFile", file_id=msg["photo"][-1]["file_id"])
    assert file["file_size"] == len(data)


async def test_media_group_files_are_attached(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    media = [
        {"type": "photo", "media": InputFile(b"one", "1.jpg")},
        {"type": "photo", "media": InputFile(b"two", "2.jpg")},
    ]
    sent = await bot.call("sendMediaGroup", chat_id=alice.chat.id, media=media)
    assert len(sent) == 2
    request = tg.calls("sendMediaGroup")[-1]
    assert [m["media"] for m in request.params["media"]] == ["attach://tgr_0_media",
                                                             "attach://tgr_1_media"]  # fmt: skip


async def test_media_files_are_sent_again_when_the_same_objects_are_reused(
    tg: FakeTelegram, bot: Bot
) -> None:
    """The caller's ``media`` dicts keep their files: a second call (or a retry) with the same
    objects uploads them again instead of sending attach:// references to nothing."""
    alice = tg.user("Alice")
    one, two = InputFile(b"one", "1.jpg"), InputFile(b"two", "2.jpg")
    media = [{"type": "photo", "media": one}, {"type": "photo", "media": two, "caption": "2"}]
    for _ in range(2):
        sent = await bot.call("sendMediaGroup", chat_id=alice.chat.id, media=media)
        assert len(sent) == 2
    assert media == [
        {"type": "photo", "media": one},
        {"type": "photo", "media": two, "caption": "2"},
    ]
    single = {"type": "photo", "media": InputFile(b"new", "3.jpg")}
    msg = await bot.send_photo(alice.chat.id, b"old")
    await bot.call(
        "editMessageMedia", chat_id=alice.chat.id, message_id=msg["message_id"], media=single
    )
    assert isinstance(single["media"], InputFile)


class SlowStream(io.RawIOBase):
    """A stream whose read waits until the test lets it go (at most 5 s), as a file on a slow
    disk or a pipe would: the event loop must keep running meanwhile."""

    name = "slow.txt"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reading = asyncio.Event()
        self.release = threading.Event()
        self.blocked_the_loop = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.loop.call_soon_threadsafe(self.reading.set)
        # On the loop's own thread, the coroutine that releases this can never run.
        self.blocked_the_loop = not self.release.wait(5)
        return b"slow data"


async def test_a_slow_file_read_does_not_block_the_event_loop(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    stream = SlowStream(asyncio.get_running_loop())
    upload = asyncio.create_task(bot.send_document(alice.chat.id, stream))
    await stream.reading.wait()
    stream.release.set()  # this coroutine ran while the file was being read
    msg = await upload
    assert not stream.blocked_the_loop
    assert msg["document"]["file_name"] == "slow.txt"


async def test_a_path_is_read_off_the_event_loop(
    tg: FakeTelegram, bot: Bot, tmp_path: Path
) -> None:
    """A FIFO blocks its reader until a writer comes; the writer here waits for the loop."""
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    loop_ran = threading.Event()
    blocked: list[bool] = []

    def writer() -> None:
        blocked.append(not loop_ran.wait(5))
        with fifo.open("wb") as out:
            out.write(b"from a pipe")

    thread = threading.Thread(target=writer)
    thread.start()
    upload = asyncio.create_task(bot.send_document(tg.user("Alice").chat.id, fifo))
    for _ in range(3):
        await asyncio.sleep(0)  # the upload task starts, and hands the read to a thread
    loop_ran.set()
    msg = await upload
    thread.join()
    assert blocked == [False]
    assert msg["document"]["file_name"] == "pipe.bin"
