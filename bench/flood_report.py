"""Write the flood benchmark's results: ``flood.md`` (goals, method, a table per part),
``flood.png`` (a chart) and ``flood.json`` (the raw figures).

``python -m bench.flood_report DIR`` writes the Markdown and the chart again from
``DIR/flood.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import COLORS, header, rebuild_main

__all__ = ["goals", "write"]

SHARE_GOAL = 0.95
RISE_GOAL_MS = 5.0
TITLES = {
    "echo3": "Echo-3: 10 messages at once per chat, 3 answers each",
    "storm": "A 429 storm on a few chats: the other chats' latency",
    "broadcast": "A broadcast, SIGKILLed in the middle and restarted",
}
ROW_COLORS = {
    "tg-telegram": COLORS["tgrunner"],
    "tg-reactive": "#5fa8d3",
    "tg-off": "#b0b0b0",
    "tg-noflag": "#888888",
    "ptb-limiter": COLORS["ptb"],
    "tg-broadcast": COLORS["tgrunner"],
}
METHOD = """\
- **FakeTelegram's limits.** The fake answers `429 Too Many Requests` with `retry_after` (and a
  `Retry-After` header) past Telegram's documented limits: 1 message/s into a chat, with a
  burst of 3 in a private chat, and 20/min into a group. Its global 30 messages/s is on in the
  broadcast part only: Telegram documents it for bulk notifications, tgrunner counts replies
  against its bulk bucket only with `--flood-replies-bulk` (off by default), and the fake
  cannot tell a reply from a notification. PTB's `AIORateLimiter` applies 30/s to every send
  whatever the fake does.
- **Delivery** is read from the fake's record of calls: every message pushed has a unique
  text, and so has every answer due, so each `sendMessage` answered 200 names what it
  delivers. *lost*: due and never delivered; *duplicates*: delivered more than once; *order
  violations*: delivered after something due later in the same chat; *chats intact*: chats
  whose every answer came once and in order; *429s*: sends the fake answered 429.
- **Echo-3 throughput** is the answers delivered over the time from the push to the last
  answer. *% of allowed* compares it with the rate the limits allow for this load (every chat
  needs 3 answers at once, then one a second: 30 answers take 27 s at best): the answers
  delivered over the time taken, counted as no less than that least time, over the allowed
  rate. 100 % is every answer in the least time the limits allow; a lost answer counts
  against it.
- **The storm's latency** runs from a message's push to the 200 of its answer, over the chats
  outside the storm; the calm phase and the storm phase run one after the other in the same
  bot process, so *p99 rise* compares the bot with itself. *Stormed chats delivered after*:
  their answers that came once the storm was lifted (tgrunner's reactive mode resends them
  after `retry_after`; a 429 that reached a handler lost its answer).
- **The broadcast's rates** count chats reached per second: before the kill, after the
  restart (from its first delivery to the last), and overall (from the first delivery to the
  last, the restart included); *down* is from the kill to the first delivery after it.
  Duplicates may be at most what was in flight at the kill; *answered in the last second*
  bounds how much the outbox could have sent and not yet marked.
- **Rows.** tgrunner runs `bench.bots.flood_echo` (`echo3`, `echo1`) with `--workers 2` in
  the mode its label says; *no --flood flag* is the build's default (before issue 13, no flood
  control at all; after it, `reactive`). PTB runs `bench.bots.ptb_flood` on its own
  `run_polling()` with `concurrent_updates(True)` and `AIORateLimiter(max_retries=3)` (PTB's
  default `max_retries=0` hands every 429 to the handler, which loses its message; with
  retries, one 429 holds every request of the bot for `retry_after` + 0.1 s).
- **Noise.** This runs on whatever host runs it; figures from a shared host are not final."""


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _done(results: list[dict[str, Any]], part: str) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in results if r["part"] == part and "skipped" not in r}


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def goals(results: list[dict[str, Any]]) -> list[str]:
    """One line per goal or figure the issue asks for, from the rows that ran."""
    lines = []
    echo = _done(results, "echo3")
    if (r := echo.get("tg-telegram")) is not None:
        ok = r["floods"] == 0 and (r["share"] or 0) >= SHARE_GOAL and r["lost"] == 0
        lines.append(
            f"- Echo-3, `--flood telegram`: **{r['floods']:,}** 429s (goal 0) and "
            f"**{_pct(r['share'])}** of the rate the limits allow (goal ≥ 95 %), lost "
            f"{r['lost']:,}: {_verdict(ok)}."
        )
    if (r := echo.get("tg-reactive")) is not None:
        ok = r["lost"] == 0 and r["duplicates"] == 0 and r["violations"] == 0
        lines.append(
            f"- Echo-3, `--flood reactive` (the default): lost **{r['lost']:,}**, duplicates "
            f"**{r['duplicates']:,}**, order violations **{r['violations']:,}** (goal: every "
            f"message once and in order): {_verdict(ok)}; {r['floods']:,} 429s, "
            f"{r['throughput']:,.0f} messages/s ({_pct(r['share'])} of the allowed rate)."
        )
    for key, what in (("tg-off", "`--flood off`"), ("tg-noflag", "no `--flood` flag"),
                      ("ptb-limiter", "PTB's `AIORateLimiter`")):  # fmt: skip
        if (r := echo.get(key)) is not None:
            lines.append(
                f"- Echo-3, {what}: {r['floods']:,} 429s, lost **{r['lost']:,}** of "
                f"{r['expected']:,}, duplicates {r['duplicates']:,}, order violations "
                f"{r['violations']:,}, {r['throughput']:,.0f} messages/s "
                f"({_pct(r['share'])} of the allowed rate)."
            )
    for r in _done(results, "storm").values():
        rise = r["p99_rise_ms"]
        line = (
            f"- Storm, {r['label']}: the other chats' p99 {_fmt(r['calm']['p99_ms'], 1)} → "
            f"{_fmt(r['storm']['p99_ms'], 1)} ms, a rise of **{_fmt(rise, 1)} ms**"
        )
        if r["framework"] == "tgrunner":
            ok = rise is not None and rise <= RISE_GOAL_MS and r["storm"]["lost"] == 0
            line += f" (goal ≤ {RISE_GOAL_MS:g} ms): {_verdict(ok)}"
        lines.append(
            f"{line}; the stormed chats' {r['stormed_messages']} answers: "
            f"{r['stormed_delivered']} delivered once the storm was lifted."
        )
    if (r := _done(results, "broadcast").get("tg-broadcast")) is not None:
        ok = r["lost"] == 0 and r["duplicates"] <= r["answered_last_second"]
        lines.append(
            f"- Broadcast to {r['chats']:,} chats, SIGKILLed at {r['before_kill']:,}: lost "
            f"**{r['lost']:,}**, duplicates **{r['duplicates']:,}** ({r['answered_last_second']}"
            f" answered in the second before the kill) (goal: 0 lost, duplicates at most what "
            f"was in flight): {_verdict(ok)}; sustained **{_fmt(r['rate_after'], 1)}/s** after "
            f"the restart, {_fmt(r['rate_before'], 1)}/s before, {_fmt(r['rate_overall'], 1)}/s"
            f" overall, down {_fmt(r['downtime_s'], 1)} s."
        )
    return lines


_HEAD = {
    "echo3": ("| bot | delivered | lost | duplicates | order violations | chats intact | 429s "
              "| other errors | seconds | messages/s | % of allowed | CPU µs/message | ended "
              "| notes |"),
    "storm": ("| bot | calm p50 ms | calm p99 ms | storm p50 ms | storm p99 ms | storm max ms "
              "| p99 rise ms | others lost | others' 429s | stormed messages | stormed "
              "delivered after | stormed 429s | notes |"),
    "broadcast": ("| bot | delivered | lost | duplicates | 429s | answered in the last s "
                  "before the kill | /s before | down s | /s after | /s overall | notes |"),
}  # fmt: skip


def _cells(r: dict[str, Any]) -> list[str]:
    if r["part"] == "echo3":
        return [
            f"{r['delivered']:,} / {r['expected']:,}", _fmt(r["lost"]), _fmt(r["duplicates"]),
            _fmt(r["violations"]), f"{r['chats_intact']:,} / {r['chats']:,}", _fmt(r["floods"]),
            _fmt(r["errors"]), _fmt(r["seconds"], 1), _fmt(r["throughput"]), _pct(r["share"]),
            _fmt(r.get("cpu_us")), r["ended"],
        ]  # fmt: skip
    if r["part"] == "storm":
        calm, hit = r["calm"], r["storm"]
        return [
            _fmt(calm["p50_ms"], 1), _fmt(calm["p99_ms"], 1), _fmt(hit["p50_ms"], 1),
            _fmt(hit["p99_ms"], 1), _fmt(hit["max_ms"], 1), _fmt(r["p99_rise_ms"], 1),
            f"{calm['lost']} + {hit['lost']}", f"{calm['floods']} + {hit['floods']}",
            _fmt(r["stormed_messages"]), _fmt(r["stormed_delivered"]),
            _fmt(r["stormed_floods"]),
        ]  # fmt: skip
    return [
        f"{r['delivered']:,} / {r['chats']:,}", _fmt(r["lost"]), _fmt(r["duplicates"]),
        _fmt(r["floods"]), _fmt(r["answered_last_second"]), _fmt(r["rate_before"], 1),
        _fmt(r["downtime_s"], 1), _fmt(r["rate_after"], 1), _fmt(r["rate_overall"], 1),
    ]  # fmt: skip


def _table(results: list[dict[str, Any]], part: str) -> list[str]:
    head = _HEAD[part]
    columns = head.count("|") - 1
    lines = [head, "|" + "---|" * columns]
    for r in results:
        if r["part"] != part:
            continue
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped: {r['skipped']} |" + " |" * (columns - 2))
            continue
        lines.append("| " + " | ".join([r["label"], *_cells(r), r["note"]]) + " |")
    return lines


def write_markdown(
    path: Path, results: list[dict[str, Any]], info: dict[str, str], plans: dict[str, str],
    command: str,
) -> None:  # fmt: skip
    lines = header("Flood control: tgrunner against PTB's AIORateLimiter", info, command)
    found = goals(results)
    if found:
        lines += ["## Goals", "", *found, ""]
    lines += ["## Method", "", METHOD, ""]
    for part, title in TITLES.items():
        if any(r["part"] == part for r in results):
            lines += [f"## {title}", "", plans.get(part, ""), "", *_table(results, part), ""]
    path.write_text("\n".join(lines))


def _bars(ax: Any, rows: list[dict[str, Any]], values: list[float], labels: list[str],
          title: str, *, log: bool = False) -> None:  # fmt: skip
    colors = [ROW_COLORS.get(r["row"], "grey") for r in rows]
    bars = ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), [r["row"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_title(title, fontsize=9)
    ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
    ax.margins(x=0.4)


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    """Echo-3: share of the allowed rate, 429s, lost; the storm's p99 calm and in the storm;
    the broadcast's chats reached over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 8.5))
    echo = [r for r in results if r["part"] == "echo3"]
    ran = ["skipped" not in r for r in echo]
    skip = "skipped"
    _bars(axes[0][0], echo, [100 * (r.get("share") or 0) for r in echo],
          [_pct(r["share"]) if ok else skip for r, ok in zip(echo, ran, strict=True)],
          "echo-3: % of the rate the limits allow (goal ≥ 95 %)")  # fmt: skip
    axes[0][0].axvline(100 * SHARE_GOAL, color="red", linestyle="--", linewidth=1)
    _bars(axes[0][1], echo, [r.get("floods") or 0 for r in echo],
          [_fmt(r["floods"]) if ok else skip for r, ok in zip(echo, ran, strict=True)],
          "echo-3: 429s (goal 0 with --flood telegram)", log=True)  # fmt: skip
    _bars(axes[0][2], echo, [r.get("lost") or 0 for r in echo],
          [f"{r['lost']:,} lost, {r['violations']:,} out of order" if ok else skip
           for r, ok in zip(echo, ran, strict=True)],
          "echo-3: answers lost", log=True)  # fmt: skip
    storm = [r for r in results if r["part"] == "storm"]
    ax = axes[1][0]
    for k, (phase, shade) in enumerate((("calm", 0.45), ("storm", 1.0))):
        values = [(r[phase]["p99_ms"] or 0) if "skipped" not in r else 0 for r in storm]
        bars = ax.barh([i + 0.4 * k for i in range(len(storm))], values, height=0.4,
                       alpha=shade, color=[ROW_COLORS.get(r["row"], "grey") for r in storm],
                       label=phase)  # fmt: skip
        ax.bar_label(bars, labels=[f"{phase} {v:,.1f}" if v else "" for v in values], fontsize=7,
                     padding=2)  # fmt: skip
    ax.set_yticks([i + 0.2 for i in range(len(storm))], [r["row"] for r in storm], fontsize=8)
    ax.invert_yaxis()
    if any(
        v > 0
        for r in storm
        if "skipped" not in r
        for v in (r["calm"]["p99_ms"] or 0, r["storm"]["p99_ms"] or 0)
    ):
        ax.set_xscale("log")  # not with no storm row measured: nothing above 0 to scale
    ax.margins(x=0.4)
    ax.legend(fontsize=7)
    ax.set_title("storm: the other chats' p99, ms (calm, then storm), log scale", fontsize=9)
    _bars(axes[1][1], storm, [max(r.get("p99_rise_ms") or 0, 0) for r in storm],
          [_fmt(r["p99_rise_ms"], 1) if "skipped" not in r else skip for r in storm],
          "storm: p99 rise, ms (goal ≤ 5 ms for tgrunner)", log=True)  # fmt: skip
    axes[1][1].axvline(RISE_GOAL_MS, color="red", linestyle="--", linewidth=1)
    ax = axes[1][2]
    for r in results:
        if r["part"] != "broadcast":
            continue
        if "skipped" in r or not r["timeline"]:
            why = r.get("skipped") or "no chat reached"
            ax.text(0.02, 0.5, f"{r['row']}: {why}"[:300], fontsize=7, wrap=True,
                    transform=ax.transAxes)  # fmt: skip
            continue
        ax.plot(range(1, len(r["timeline"]) + 1), r["timeline"], label=r["row"],
                color=ROW_COLORS.get(r["row"], "grey"))  # fmt: skip
        ax.axvline(r["killed_at_s"], color="red", linestyle=":", linewidth=1, label="SIGKILL")
        ax.legend(fontsize=7)
    ax.set_title("broadcast: chats reached, by seconds since it started", fontsize=9)
    fig.suptitle(f"Flood control on FakeTelegram (rows: see flood.md) — {info.get('cpu', '?')}, "
                 f"{info.get('date', '?')}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(
    out: Path, results: list[dict[str, Any]], info: dict[str, str], plans: dict[str, str],
    command: str,
) -> None:  # fmt: skip
    """Write flood.md, flood.png and flood.json into ``out``."""
    write_markdown(out / "flood.md", results, info, plans, command)
    write_png(out / "flood.png", results, info)
    payload = {"machine": info, "plans": plans, "command": command, "goals": goals(results),
               "results": results}  # fmt: skip
    (out / "flood.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.flood_report DIR``: rebuild DIR's report from its flood.json."""
    return rebuild_main("flood", write, argv)


if __name__ == "__main__":
    sys.exit(main())
