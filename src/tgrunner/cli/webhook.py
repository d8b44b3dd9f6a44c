"""``tgrunner set-webhook URL``, ``tgrunner delete-webhook`` and ``tgrunner webhook-info``:
the bot's webhook at Telegram, set, removed and shown.

Each makes one Bot API call (``setWebhook``, ``deleteWebhook``, ``getWebhookInfo``) with the
token and server found as ``tgrunner run`` finds them (:mod:`tgrunner.cli.connect`), and
prints one line (``webhook-info``: one line per field). A usage error is one line and exit code
2; a call that fails is one line and exit code 1. The secret token is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from tgrunner.cli.common import checked
from tgrunner.cli.connect import ENVIRONMENT, add_bot_options, api_url_from, bot_from, failure
from tgrunner.errors import ConfigError, TgrunnerError
from tgrunner.settings import ENV
from tgrunner.sources.webhook_options import check_webhook_url

__all__ = ["add_parser", "ago", "describe_info"]

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The ports Telegram delivers webhooks to (a self-hosted Bot API server takes any).
_DEFAULT_KINDS = "all but chat_member, message_reaction and message_reaction_count"

SET_DESCRIPTION = """\
Set the bot's webhook: Telegram then POSTs each update to URL, and getUpdates (polling, as
'tgrunner run' does) fails with 409 Conflict until the webhook is removed with
'tgrunner delete-webhook'.

Telegram delivers only to https:// URLs on port 443, 80, 88 or 8443; a self-hosted Bot API
server (or FakeTelegram, through --api-url) also takes http:// and any port. With
--webhook-secret, every delivery carries it in the X-Telegram-Bot-Api-Secret-Token header,
so the receiving server can tell Telegram's requests from others.
"""

SET_EPILOG = f"""\
{ENVIRONMENT}
examples:
  BOT_TOKEN=123456:ABC... tgrunner set-webhook https://bot.example.org/telegram
  tgrunner set-webhook https://bot.example.org/telegram --webhook-secret s3cr3t_t0ken
  tgrunner set-webhook https://bot.example.org:8443/hook --max-connections 100 \\
      --allowed-updates message,callback_query --drop-pending-updates
"""

DELETE_DESCRIPTION = """\
Remove the bot's webhook, so the bot can get its updates by polling again ('tgrunner run').
The updates waiting at Telegram are kept, to be fetched by the next getUpdates, unless
--drop-pending-updates is given.
"""

DELETE_EPILOG = f"""\
{ENVIRONMENT}
examples:
  BOT_TOKEN=123456:ABC... tgrunner delete-webhook
  tgrunner delete-webhook --drop-pending-updates
"""

INFO_DESCRIPTION = """\
Show the bot's webhook as Telegram sees it (getWebhookInfo): its URL (none while the bot
polls), the updates waiting to be delivered, the last delivery error and when it happened,
the connection limit, the IP address Telegram sends to, and the update kinds it sends.
"""

INFO_EPILOG = f"""\
{ENVIRONMENT}
examples:
  BOT_TOKEN=123456:ABC... tgrunner webhook-info
  tgrunner webhook-info --json | jq .pending_update_count
"""


def _secret(text: str) -> str:
    if not _SECRET.fullmatch(text):
        raise ValueError(
            "must be 1 to 256 characters, each a letter (A-Z, a-z), a digit, '_' or '-'"
        )
    return text


def _max_connections(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise ValueError("must be a whole number from 1 to 100")
    return value


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError("is not an IPv4 or IPv6 address") from None


def _kinds(text: str) -> list[str]:
    return list(ENV["TGRUNNER_ALLOWED_UPDATES"].parse(text))


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an https:// URL")
    return text


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``set-webhook``, ``delete-webhook`` and ``webhook-info`` commands; returns
    the first."""
    s: argparse.ArgumentParser = sub.add_parser(
        "set-webhook",
        help="send the bot's updates to a URL (setWebhook)",
        description=SET_DESCRIPTION,
        epilog=SET_EPILOG,
    )
    s.add_argument("url", type=checked(_url), metavar="URL", help="where Telegram sends updates")
    s.add_argument(
        "--webhook-secret",
        type=checked(_secret, quote=False),
        metavar="SECRET",
        help="sent with each delivery in the X-Telegram-Bot-Api-Secret-Token header; 1-256 "
        "characters of A-Z, a-z, 0-9, _ and - (default: none)",
    )
    s.add_argument(
        "--max-connections",
        type=checked(_max_connections),
        default=40,
        metavar="N",
        help="deliveries Telegram makes at once, 1-100 (default 40)",
    )
    s.add_argument(
        "--allowed-updates",
        type=checked(_kinds),
        metavar="KINDS",
        help="comma-separated update kinds to send, such as message,callback_query, or '' "
        f"for Telegram's default set: {_DEFAULT_KINDS}; default: keep the bot's current "
        "setting",
    )
    s.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="drop the updates waiting at Telegram (default: deliver them)",
    )
    s.add_argument(
        "--ip-address",
        type=checked(_ip_address),
        metavar="IP",
        help="send to this IP address instead of the one DNS gives for URL's host (default: DNS)",
    )
    add_bot_options(s)
    s.set_defaults(func=_cmd_set)

    d: argparse.ArgumentParser = sub.add_parser(
        "delete-webhook",
        help="remove the bot's webhook, to poll again (deleteWebhook)",
        description=DELETE_DESCRIPTION,
        epilog=DELETE_EPILOG,
    )
    d.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="also drop the updates waiting at Telegram (default: keep them)",
    )
    add_bot_options(d)
    d.set_defaults(func=_cmd_delete)

    i: argparse.ArgumentParser = sub.add_parser(
        "webhook-info",
        help="show the bot's webhook and its pending updates (getWebhookInfo)",
        description=INFO_DESCRIPTION,
        epilog=INFO_EPILOG,
    )
    i.add_argument(
        "--json",
        action="store_true",
        help="print Telegram's WebhookInfo object as it came, as JSON (default: readable lines)",
    )
    add_bot_options(i)
    i.set_defaults(func=_cmd_info)
    return s


class _Failed(Exception):
    """A Bot API call failed; the message is the line to print."""


def _call(args: argparse.Namespace, method: str, params: dict[str, Any]) -> Any:
    """The result of ``method`` called with ``params``; a failed call raises :class:`_Failed`,
    a usage error (no token) ConfigError."""

    async def call() -> Any:
        async with bot_from(args) as bot:
            return await bot.call(method, **params)

    try:
        return asyncio.run(call())
    except ConfigError:
        raise
    except TgrunnerError as exc:
        raise _Failed(failure(exc)) from None


def _run(args: argparse.Namespace, body: Callable[[argparse.Namespace], None]) -> int:
    try:
        body(args)
    except _Failed as exc:
        print(f"tgrunner {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_set(args: argparse.Namespace) -> int:
    return _run(args, _set)


def _set(args: argparse.Namespace) -> None:
    check_webhook_url(args.url, api_url_from(args))
    params: dict[str, Any] = {"url": args.url, "max_connections": args.max_connections}
    said = [f"max {args.max_connections} connections"]
    if args.webhook_secret is not None:
        params["secret_token"] = args.webhook_secret
        said.insert(0, "with a secret token")
    if args.allowed_updates is not None:
        params["allowed_updates"] = args.allowed_updates
        said.append(f"updates: {', '.join(args.allowed_updates) or _DEFAULT_KINDS}")
    if args.ip_address is not None:
        params["ip_address"] = args.ip_address
        said.append(f"to IP {args.ip_address}")
    if args.drop_pending_updates:
        params["drop_pending_updates"] = True
        said.append("pending updates dropped")
    _call(args, "setWebhook", params)
    print(f"Webhook set: {args.url}; {'; '.join(said)}")


def _cmd_delete(args: argparse.Namespace) -> int:
    return _run(args, _delete)


def _delete(args: argparse.Namespace) -> None:
    drop = bool(args.drop_pending_updates)
    _call(args, "deleteWebhook", {"drop_pending_updates": drop})
    kept = "pending updates dropped" if drop else "pending updates kept"
    print(f"Webhook removed: the bot can poll again ('tgrunner run'); {kept}")


def _cmd_info(args: argparse.Namespace) -> int:
    return _run(args, _info)


def _info(args: argparse.Namespace) -> None:
    info = _call(args, "getWebhookInfo", {})
    if args.json:
        print(orjson.dumps(info).decode())
        return
    for label, value in describe_info(info):
        print(f"{label:<17} {value}")


def ago(seconds: float) -> str:
    """How long ``seconds`` is, roughly, for "… ago": ``12 s``, ``5 min``, ``3 h``, ``2 days``."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _when(unix: int, now: float) -> str:
    stamp = datetime.fromtimestamp(unix).astimezone().isoformat(timespec="seconds")
    return f"{stamp} ({ago(now - unix)} ago)"


def describe_info(info: dict[str, Any], now: float | None = None) -> list[tuple[str, str]]:
    """A WebhookInfo object as (label, text) lines; times as local ISO times and how long
    before ``now`` (default: the current time) they were."""
    now = time.time() if now is None else now
    url = info.get("url") or ""
    cert = " (custom certificate)" if info.get("has_custom_certificate") else ""
    lines = [("url", f"{url}{cert}" if url else "none: the bot gets updates by polling")]
    lines.append(("pending updates", str(info.get("pending_update_count", 0))))
    if info.get("last_error_date"):
        message = info.get("last_error_message") or "(no message)"
        lines.append(("last error", f"{_when(info['last_error_date'], now)}: {message}"))
    elif url:
        lines.append(("last error", "none"))
    if info.get("last_synchronization_error_date"):
        lines.append(("last sync error", _when(info["last_synchronization_error_date"], now)))
    if "max_connections" in info:
        lines.append(("max connections", str(info["max_connections"])))
    if info.get("ip_address"):
        lines.append(("ip address", str(info["ip_address"])))
    kinds = info.get("allowed_updates")
    lines.append(("allowed updates", ", ".join(kinds) if kinds else f"default ({_DEFAULT_KINDS})"))
    return lines
