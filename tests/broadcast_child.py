"""A process that sends one broadcast to FakeTelegram, or resumes it, for the SIGKILL tests:

    python broadcast_child.py API_URL TOKEN OUTBOX CHATS_JSON WINDOW

It resumes what the outbox holds; with nothing there yet it starts the broadcast of a build
to the chats of CHATS_JSON. It says ``sending`` once it sends, and ``done STATE`` at the end,
on stderr: ``done`` alone when there was nothing left to send.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import broadcast_builds
from tgrunner.client.bot import Bot
from tgrunner.flood.broadcast import Broadcaster, bot_sender
from tgrunner.flood.outbox import Outbox


async def main(api_url: str, token: str, path: str, chats: list[int], window: int) -> None:
    async with Bot(token, api_url=api_url) as bot:
        with Outbox(path) as outbox:
            async with Broadcaster(outbox, bot_sender(bot), window=window) as caster:
                handles = await caster.resume()
                if not handles and not outbox.listing(1):
                    handles = [await caster.start(chats, build=broadcast_builds.personal)]
                print("sending", file=sys.stderr, flush=True)
                states = [(await handle.wait()).state for handle in handles]
    print("done", *states, file=sys.stderr, flush=True)


if __name__ == "__main__":
    api_url, token, path, chats_file, window = sys.argv[1:]
    chats = json.loads(Path(chats_file).read_text())
    asyncio.run(main(api_url, token, path, chats, int(window)))
