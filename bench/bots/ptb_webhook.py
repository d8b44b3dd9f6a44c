"""The python-telegram-bot 22 echo bot of :mod:`bench.bots.ptb_echo` (sequential, PTB's
default), served by PTB's own webhook server: ``python -m bench.bots.ptb_webhook``.

``Application.run_webhook`` (tornado; it answers 200 once the update is in the application's
queue) on 127.0.0.1, the port from ``BENCH_WEBHOOK_PORT``; PTB calls ``setWebhook`` itself,
with ``max_connections=100``. The server comes from ``BENCH_API_URL``, the token from
``BOT_TOKEN``.
"""

from __future__ import annotations

import os

from bench.bots.ptb_echo import application

PATH = "tg/hook"
MAX_CONNECTIONS = 100


def main() -> None:
    port = int(os.environ["BENCH_WEBHOOK_PORT"])
    application.run_webhook(
        listen="127.0.0.1",
        port=port,
        url_path=PATH,
        webhook_url=f"http://127.0.0.1:{port}/{PATH}",
        max_connections=MAX_CONNECTIONS,
        allowed_updates=["message"],
    )


if __name__ == "__main__":
    main()
