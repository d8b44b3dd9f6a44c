"""Write the webhook scenario's results: ``webhook.md`` (tables, method, goals), ``webhook.png``
(a chart) and ``webhook.json`` (the raw figures)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import COLORS, header, rebuild_main

__all__ = ["goals", "write"]

TARGET_THROUGHPUT = 5000.0  # updates/s on one intake core, journal on
TARGET_ACK_P99_MS = 5.0
TITLES = {
    "throughput": "Throughput: a backlog delivered by webhook",
    "ack": "Time to the 200 under a steady load",
    "crash": "Crash: the bot SIGKILLed during a webhook run",
}
METHOD = """\
- **Delivery.** FakeTelegram (in the harness process) delivers every update by webhook as
  Telegram does: at most `max_connections` POSTs at once (every bot sets 100), one update in
  flight per chat (the next waits for its 2xx), and a non-2xx answer, a timeout (10 s) or a
  broken connection retried with a capped backoff (`WebhookRetry(base=0.05, cap=1.0)`: 50 ms,
  doubling, at most 1 s; Telegram's own is 2, 4, 8 … s). Each bot calls `setWebhook` itself
  at start-up. The echo bot is the same in every row: it sends each message's text back
  into its chat (a reply, `sendMessage`).
- **The rows.** `tgrunner run bench.bots.native_echo:router --webhook-url … --listen …
  --max-connections 100`: tgrunner's webhook source, the intake journal on (the default,
  in a fresh data dir): each update is in the journal before its 200. aiogram 3:
  `SimpleRequestHandler` + `setup_application` on an aiohttp `web.Application`, its
  documented example, default mode (`handle_in_background=True`: the 200 goes at once, the
  update is handled in a task). PTB 22: `Application.run_webhook(...)` (its tornado server
  puts the update in the application's queue and answers 200; the application handles the
  queue one update at a time, its default).
- **Pinning.** The harness (FakeTelegram and the load driver) on core 0, the bot on core 1:
  one *intake core*. The `--workers 2` row's processes are not pinned (they need both
  cores, and share core 0 with the harness on this 2-core machine).
- **Warm-up.** Before each measure, 400 messages over 20 chats of their own, all answered
  (the webhook server is then listening and, with `--workers 2`, the workers are ready);
  the POST timings start after it.
- **Throughput** is replies over the time from the backlog being queued (FakeTelegram starts
  POSTing it at once) to the last reply. **CPU µs/update** is the bot's process tree (the
  bot process, its workers, reaped children) from `/proc`, from the end of the warm-up to the
  last reply, over the replies; *cores busy* is that CPU over the wall time.
- **Time to the 200** (`FakeTelegram(webhook_timings=WebhookTimings())`): for every POST
  answered 2xx, the time from FakeTelegram sending it to the answer, on the harness's clock
  (it includes the harness's own event-loop delays). *non-2xx* counts POSTs answered
  otherwise, timed out or broken (each was retried).
- **End-to-end p50 / p99**: from a message being queued at FakeTelegram to its reply.
- **Crash**: the bot's process group SIGKILLed at even intervals during the offered load and
  started again at once on the same port and data dir (the next kill waits for the restart's
  `setWebhook`). FakeTelegram resends whatever was not answered 2xx. At the end the harness
  waits until FakeTelegram holds no undelivered update and the bot has sent nothing for 2 s
  (a slow bot may still be working through updates it acknowledged; *replied* counts those
  late answers too): every message still unanswered was then acknowledged (a 200) by a bot
  that never handled it: *acknowledged and lost*.
- **Order, loss, duplicates.** As in the peers benchmark: every message's text is a unique
  number; a *violation* is a reply that comes after the reply to a later message of the same
  chat; *lost*: never answered; *duplicates*: extra answers."""


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def _rows(results: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    return [r for r in results if r["part"] == part]


def goals(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Each goal of the issue with whether it was met, from the tgrunner rows measured."""
    out = []
    by = {(r["row"], r["part"]): r for r in results if "skipped" not in r}
    tp = by.get(("tg-webhook", "throughput"))
    if tp:
        out.append(
            (
                f"Throughput on one intake core, journal on: **{tp['throughput']:,.0f} updates/s** "
                f"(goal ≥ {TARGET_THROUGHPUT:,.0f}/s)",
                tp["throughput"] >= TARGET_THROUGHPUT and tp["lost"] == 0,
            )
        )
    for key in ("tg-webhook", "tg-webhook-w2"):
        ack = by.get((key, "ack"))
        if ack and ack.get("ack_p99_ms") is not None:
            out.append(
                (
                    f"`{key}`: time to the 200 at {ack['rate']:,.0f} updates/s, p99 "
                    f"**{ack['ack_p99_ms']:,.2f} ms** (goal ≤ {TARGET_ACK_P99_MS:g} ms)",
                    ack["ack_p99_ms"] <= TARGET_ACK_P99_MS,
                )
            )
    for key in ("tg-webhook", "tg-webhook-w2"):
        crash = by.get((key, "crash"))
        if crash:
            out.append(
                (
                    f"`{key}`: {len(crash.get('kills', []))} SIGKILLs: lost **{crash['lost']}**, "
                    f"order violations **{crash['violations']}** (goal 0 and 0)",
                    crash["lost"] == 0 and crash["violations"] == 0,
                )
            )
    return out


def _skipped(rows: list[dict[str, Any]]) -> list[str]:
    return [f"\n- Skipped: **{r['label']}**: {r['skipped']}" for r in rows if "skipped" in r]


def _throughput_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| bot | updates/s | CPU µs/update | cores busy | peak RSS MB | p50 ms | p99 ms "
        "| 200 after p50 / p99 ms | non-2xx | violations | lost | duplicates | notes |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        if "skipped" in r:
            continue
        lines.append(
            f"| {r['label']} | {_fmt(r['throughput'])} | {_fmt(r.get('cpu_us'))} "
            f"| {_fmt(r.get('cores_busy'), 2)} | {_fmt(r.get('rss_mb'))} "
            f"| {_fmt(r['p50_ms'], 1)} | {_fmt(r['p99_ms'], 1)} "
            f"| {_fmt(r['ack_p50_ms'], 2)} / {_fmt(r['ack_p99_ms'], 2)} | {r['ack_failed']:,} "
            f"| {r['violations']:,} | {r['lost']:,} | {r['duplicates']:,} | {r['note']} |"
        )
    return lines + _skipped(rows)


def _ack_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| bot | POSTs answered 2xx | 200 after p50 ms | p99 ms | max ms | non-2xx | updates/s "
        "| end-to-end p50 ms | p99 ms | violations | lost | notes |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        if "skipped" in r:
            continue
        lines.append(
            f"| {r['label']} | {r['acks']:,} | {_fmt(r['ack_p50_ms'], 2)} "
            f"| {_fmt(r['ack_p99_ms'], 2)} | {_fmt(r['ack_max_ms'], 1)} | {r['ack_failed']:,} "
            f"| {_fmt(r['throughput'])} | {_fmt(r['p50_ms'], 1)} | {_fmt(r['p99_ms'], 1)} "
            f"| {r['violations']:,} | {r['lost']:,} | {r['note']} |"
        )
    return lines + _skipped(rows)


def _crash_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| bot | kills | at s | restart to setWebhook s (max) | replied | acknowledged and lost "
        "| never acknowledged | violations | duplicates | non-2xx | notes |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        if "skipped" in r:
            continue
        kills = r.get("kills", [])
        at = ", ".join(f"{k['at_s']:g}" for k in kills) or "—"
        restart = max((k["restart_s"] for k in kills), default=None)
        replied = r["replied"] + r.get("answered_late", 0)
        lines.append(
            f"| {r['label']} | {len(kills)} | {at} | {_fmt(restart, 2)} | {replied:,} "
            f"| **{r['acked_lost']:,}** | {r['unacknowledged']:,} | {r['violations']:,} "
            f"| {r['duplicates']:,} | {r['ack_failed']:,} | {r['note']} |"
        )
    return lines + _skipped(rows)


TABLES = {"throughput": _throughput_table, "ack": _ack_table, "crash": _crash_table}


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    title = "Webhook intake: tgrunner against aiogram and python-telegram-bot"
    lines = header(title, info, command)
    lines += ["## Goals", ""]
    found = goals(results)
    lines += [f"- {text}: {_verdict(ok)}." for text, ok in found] or ["- No tgrunner row ran."]
    lines += ["", "## Method", "", METHOD, ""]
    for part, table in TABLES.items():
        mine = _rows(results, part)
        if mine:
            lines += [f"## {TITLES[part]}", "", plans[part], "", *table(mine), ""]
    path.write_text("\n".join(lines) + "\n")


def _barh(ax: Any, rows: list[dict[str, Any]], values: list[float], labels: list[str]) -> None:
    y = range(len(rows))
    bars = ax.barh(y, values, color=[COLORS.get(r["framework"], "grey") for r in rows])
    ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    ax.set_yticks(list(y), [r["label"] for r in rows], fontsize=8)
    ax.invert_yaxis()


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "skipped" not in r]
    fig, axes = plt.subplots(3, 1, figsize=(12, 11))
    tp = _rows(ok, "throughput")
    ax = axes[0]
    if tp:
        values = [r["throughput"] for r in tp]
        _barh(ax, tp, values, [f"{v:,.0f}/s, {r.get('cpu_us') or 0:,.0f} µs CPU"
                               for v, r in zip(values, tp, strict=True)])  # fmt: skip
        ax.axvline(TARGET_THROUGHPUT, color="red", linestyle="--", linewidth=1,
                   label=f"goal {TARGET_THROUGHPUT:,.0f}/s")  # fmt: skip
        ax.legend(fontsize=7, loc="lower right")
        ax.margins(x=0.3)
    ax.set_title("backlog by webhook: updates/s (higher is better)", fontsize=9)
    ack = [r for r in _rows(ok, "ack") if r.get("ack_p99_ms")]
    ax = axes[1]
    if ack:
        y = range(len(ack))
        p50 = [max(r["ack_p50_ms"], 0.01) for r in ack]
        p99 = [max(r["ack_p99_ms"], 0.01) for r in ack]
        colors = [COLORS.get(r["framework"], "grey") for r in ack]
        ax.barh([i + 0.2 for i in y], p99, height=0.4, color=colors, label="p99")
        bars = ax.barh([i - 0.2 for i in y], p50, height=0.4, color=colors, alpha=0.5,
                       label="p50")  # fmt: skip
        ax.bar_label(bars, labels=[f"p50 {v:,.2f}" for v in p50], fontsize=7, padding=2)
        ax.bar_label(ax.containers[0], labels=[f"p99 {v:,.2f}" for v in p99], fontsize=7,
                     padding=2)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yticks(list(y), [r["label"] for r in ack], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(TARGET_ACK_P99_MS, color="red", linestyle="--", linewidth=1,
                   label=f"goal p99 {TARGET_ACK_P99_MS:g} ms")  # fmt: skip
        ax.legend(fontsize=7, loc="lower right")
        ax.margins(x=0.3)
        rate = ack[0]["rate"]
        ax.set_title(f"time from POST to 200 at {rate:,.0f} updates/s, ms (log scale)", fontsize=9)
    crash = _rows(ok, "crash")
    ax = axes[2]
    if crash:
        values = [float(r["acked_lost"]) for r in crash]
        _barh(ax, crash, values, [f"{r['acked_lost']:,} lost, {r['violations']:,} violations, "
                                  f"{r['duplicates']:,} duplicates" for r in crash])  # fmt: skip
        ax.margins(x=0.5)
        kills = max(len(r.get("kills", [])) for r in crash)
        ax.set_title(f"{kills} SIGKILLs during {crash[0]['updates']:,} updates: acknowledged "
                     "and never answered (lower is better)", fontsize=9)  # fmt: skip
    fig.suptitle(f"webhook intake — {info.get('cpu', '?')}, {info.get('date', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    """Write webhook.md, webhook.png and webhook.json into ``out``."""
    write_markdown(out / "webhook.md", results, info, plans, command)
    write_png(out / "webhook.png", results, info)
    payload = {"machine": info, "plans": plans, "command": command,
               "goals": goals(results), "results": results}  # fmt: skip
    (out / "webhook.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.webhook_report DIR``: rebuild DIR's report from its webhook.json."""
    return rebuild_main("webhook", write, argv)


if __name__ == "__main__":
    sys.exit(main())
