"""Which source a runner reads: polling, or a webhook when the settings name one.

The webhook's secret, when none is given, is generated once and kept beside the journal in
``<data dir>/<bot id>/webhook-secret`` (mode 0600): a restart keeps the secret Telegram was
given, so requests already on their way are not refused.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.intake.options import IntakeOptions, bot_dir
from tgrunner.protocols import Source
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingSource, reach_api
from tgrunner.sources.webhook_options import check_webhook_url

__all__ = ["SECRET_FILE", "make_source", "stored_secret"]

log = logging.getLogger(__name__)

SECRET_FILE = "webhook-secret"
"""The file, in the bot's data dir, that keeps a generated webhook secret."""


def make_source(bot: Bot, settings: Settings, *, backlog: Callable[[], int]) -> Source:
    """A :class:`~tgrunner.sources.webhook.WebhookSource` when ``settings.webhook`` is set
    (its secret and allowed updates filled in), else a polling source.

    ``backlog()`` is how many updates the runtime holds unfinished (a webhook answers 429
    above its ``max_backlog``). Raises ConfigError when Telegram would not deliver to the URL
    (on Telegram's own server: https:// on port 443, 80, 88 or 8443), or the secret cannot
    be kept.
    """
    webhook = settings.webhook
    if webhook is None:
        return PollingSource(bot, settings.polling)
    from tgrunner.sources.webhook import WebhookSource  # aiohttp's server: only when used

    if webhook.set_webhook:
        check_webhook_url(webhook.url, bot.api_url)  # Telegram's own rules, on its server
    changes: dict[str, Any] = {}
    if webhook.secret is None:
        changes["secret"] = stored_secret(settings.intake, bot.id)
    if webhook.allowed_updates is None and settings.polling.allowed_updates is not None:
        changes["allowed_updates"] = settings.polling.allowed_updates
    options = replace(webhook, **changes)
    return WebhookSource(
        bot, options, backlog=backlog, reach=lambda: reach_api(bot, settings.polling)
    )


def stored_secret(options: IntakeOptions, bot_id: int) -> str:
    """The bot's webhook secret from its data dir, generated (43 URL-safe characters) and
    written with mode 0600 the first time."""
    path = bot_dir(options, bot_id) / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        raise ConfigError(f"Cannot read the webhook secret {path}: {exc.strerror}.") from None
    if text:
        return text
    secret = secrets.token_urlsafe(32)
    _write_private(path, secret)
    log.info("generated a webhook secret in %s", path)
    return secret


def _write_private(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise ConfigError(
            f"Cannot write the webhook secret {path}: {exc.strerror}. Pass --webhook-secret, "
            "or make the data dir writable."
        ) from None
