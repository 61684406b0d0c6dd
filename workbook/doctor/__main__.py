"""`python -m workbook.doctor LOG [--provider KEY ...] [--top N] [--json] [--request LINE] [--html PATH]
[--workers N] [--dask ADDRESS]`: diagnose a log.

Prints, per cause, the first request it broke and the worst ones (line, time, part, the two texts side by side,
tokens lost), then the totals, what the log costs at each provider and what each fix would save. `--json` prints
the same as JSON for machines, `--request LINE` one request in full; `--html` also writes a self-contained page.
Bad input prints its message to stderr and exits with status 2. The output may be piped (`| head`, `| less`).
`--dask ADDRESS` runs every pass sharded by call type on the Dask scheduler at ADDRESS (`local`: a cluster of
this machine's cores), with the `scale` extra installed; the report is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import asdict
from typing import Sequence

from ..errors import WorkbookError
from ..providers import duration
from . import DEFAULT_TOKENIZER, Finding, Report, diagnose
from .causes import HEALTHY
from .diagnosis import SNIPPET
from .report_html import best_fix_line, cause_rows, cost_after, reported_note, tokenizer_note, write_html

DEFAULT_PROVIDER = "anthropic/claude-sonnet-4-5"
NUMBER = re.compile(r"[-+±$\d.,%() ]+")  # a cell right-aligned as a number
COLUMN = 36  # characters of each snippet shown side by side


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workbook.doctor", description=__doc__.split("\n\n")[1])
    p.add_argument("log", help="a JSONL request log (OpenAI or Anthropic shape) or a .json list of rendered prompts")
    p.add_argument("--provider", action="append", metavar="KEY",
                   help=f"a price sheet key, e.g. openai/gpt-5.5; repeat for several (default: {DEFAULT_PROVIDER})")
    p.add_argument("--top", type=int, default=1, metavar="N", help="the N worst requests per cause (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--request", type=int, metavar="LINE", help="print one request (its log line) in full")
    p.add_argument("--html", metavar="PATH", help="also write the report as one self-contained HTML page")
    p.add_argument("--tokenizer", default=None, metavar="NAME",
                   help=f"a shipped tokenizer, a checkpoint folder, a cached hub name, or a tiktoken encoding such "
                        f"as o200k_base (default: {DEFAULT_TOKENIZER})")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes in all, this one and the ones that bill the fixed logs (default: every core for a log "
                        "too big to hold, else up to 2)")
    p.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="run sharded by call type on this Dask scheduler ('local': a cluster on this machine)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 for bad input)."""
    args = parser().parse_args(argv)
    try:
        if args.top < 1:
            raise WorkbookError(f"--top takes a number of requests, 1 or more, not {args.top}.")
        with dask_client(args.dask) as scheduler:
            report = diagnose(args.log, provider=args.provider or [DEFAULT_PROVIDER], tokenizer=args.tokenizer,
                              workers=args.workers, scheduler=scheduler)
        if args.json:
            text = json.dumps(as_json(report, args.log, args.top), ensure_ascii=False, indent=1)
        elif args.request is not None:
            text = request_text(report, args.request)
        else:
            text = summary(report, args.log, args.top)
    except WorkbookError as error:  # the message names the line or the known ids; a traceback would add nothing
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not emit(text):
        return 1
    if args.html:
        try:
            path = write_html(report, args.html, source=args.log)
        except OSError as error:
            print(f"error: cannot write {args.html}: {error.strerror or error}", file=sys.stderr)
            return 2
        emit(f"\nHTML report written to {path}")
    return 0


@contextmanager
def dask_client(address: str | None):
    """A Dask client for `--dask` (None without it): connected to the scheduler at `address`, or to a cluster of
    worker processes started on this machine for 'local'."""
    if address is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise WorkbookError("--dask needs Dask: pip install -e '.[scale]'.") from None
    if address == "local":
        with LocalCluster(dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(address) as client:
            yield client


def emit(text: str) -> bool:
    """Print `text`; False if the reader went away (`| head`). Python's documented way: point stdout at devnull so
    the interpreter's own flush at exit does not fail again (https://docs.python.org/3/library/signal.html, "Note
    on SIGPIPE")."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True


# ----- the text report ----------------------------------------------------------------------------------------

def summary(report: Report, source: str, top: int = 1) -> str:
    """The report as text: the overview, each cause with its first and worst requests, totals, costs and fixes."""
    sections = [overview(report, source), causes_detail(report, top), causes_table(report), costs_table(report),
                reported_table(report), tokenizer_note(report)]
    return "\n\n".join(s for s in sections if s)


def overview(report: Report, source: str) -> str:
    d = report.diagnosis
    achieved = "as the log reports it" if report.reported else f"simulated at {report.model_keys[0]}"
    return f"Cache doctor: {source}\n" + table([
        ["requests", f"{len(d.findings):,}", f"in {len(d.streams())} call type(s), each diagnosed on its own"],
        ["prompt tokens", f"{d.tokens:,}", ""],
        ["hit rate achieved", f"{report.achieved_hit_rate:.1%}", f"prompt tokens read from cache, {achieved}"],
        ["hit rate achievable", f"{report.achievable_hit_rate:.1%}",
         f"simulated at {report.model_keys[0]} after the fixes that lower the bill"],
    ])


def causes_detail(report: Report, top: int) -> str:
    """Per cause, most tokens lost first: its meaning, then the first request it broke and the `top` worst."""
    rows = [row for row in cause_rows(report) if row[0] not in HEALTHY]
    if not rows:
        return "No request lost cache hits to a cause."
    blocks = []
    for name, count, lost, meaning in rows:
        hit = [f for f in report.diagnosis.findings if has_cause(f, name)]
        worst = sorted(hit, key=lambda f: (-f.lost_tokens, f.line))[:top]
        shown = [("first", hit[0])] + [("worst", f) for f in worst if f is not hit[0]]
        blocks.append(f"== {name}: {count:,} request(s), {lost:,} tokens lost ==\n{meaning}\n"
                      + "\n".join(finding_lines(label, f, name) for label, f in shown))
    return "Where cache hits broke, and why\n\n" + "\n\n".join(blocks)


def has_cause(f: Finding, name: str) -> bool:
    return (f.cause is not None and f.cause.name == name) or any(p.name == name for p in f.problems)


def finding_lines(label: str, f: Finding, name: str) -> str:
    """A finding in a few lines: which request, when, where, how many tokens, and the two texts side by side with
    the first differing character marked."""
    problem = f.cause is None or f.cause.name != name
    cause = next(p for p in f.problems if p.name == name) if problem else f.cause
    when = "" if f.at_s is None else f" at {duration(f.at_s)}"
    against = "" if f.match_line is None else f" vs line {f.match_line}"
    lost = f"counted under {f.cause.name}" if problem and f.cause else f"{f.lost_tokens:,} tokens lost"
    lines = [f"  {label}: line {f.line}{when}{against}, {f.part or 'the request'}: {lost}", f"    {cause.detail}"]
    if f.char_at is not None:
        (before, mark), (after, _) = side_by_side(f)
        caret = " " * mark + "^"
        lines += [f"    {'line ' + str(f.match_line):<{COLUMN}}  line {f.line}", f"    {before:<{COLUMN}}  {after}",
                  f"    {caret:<{COLUMN}}  {caret}"]
    return "\n".join(lines)


def side_by_side(f: Finding, width: int = COLUMN) -> tuple[tuple[str, int], tuple[str, int]]:
    """The two snippets cut to `width` characters around the first differing one, newlines shown as ⏎; each with
    where that character is in it."""
    def cut(snippet: str) -> tuple[str, int]:
        at = min(f.char_at, SNIPPET) + snippet.startswith("…")  # where `around` put the divergence
        start = max(0, at - width // 2)
        return snippet[start:start + width].replace("\n", "⏎").replace("\t", "⇥"), at - start

    return cut(f.before), cut(f.after)


def causes_table(report: Report) -> str:
    rows = cause_rows(report)
    if not rows:
        return "No request broke the prefix of an earlier one."
    scale = report.calibration
    extra = [] if scale is None else ["calibrated"]
    return "Totals per cause\n" + table([[name + (" (healthy)" if name in HEALTHY else ""), f"{n:,}", f"{lost:,}",
                                          *([] if scale is None else [f"{round(lost * scale):,}"]), meaning]
                                         for name, n, lost, meaning in rows],
                                        ["cause", "requests", "tokens lost", *extra, "what it means"])


def costs_table(report: Report) -> str:
    keys = report.model_keys
    rows = [["now", f"{report.cached_share:.1%}", *(f"${usd:,.4f}" for usd in report.cost_now_usd.values()),
             "", "the log as it is"]]
    rows += [[fix.name, f"{fix.cached_share:.1%}", *(cost_after(report, fix, key) for key in keys),
              "yes" if report.helps(fix) else "no", fix.does]
             for fix in report.fix_results]
    return (f"Cost of the whole log, now and after each fix (simulated; cached: the share of prompt tokens "
            f"{keys[0]} reads from cache)\n"
            + table(rows, ["fix", "cached", *keys, "lowers it", "what it does"]) + "\n" + best_fix_line(report))


def reported_table(report: Report) -> str:
    rows = report.reported_vs_simulated()
    if not rows:
        return ""
    total = ["total", f"{sum(r for _, r, _ in rows):,}", f"{sum(s for _, _, s in rows):,}"]
    return ("Cached tokens, reported in the log and simulated\n" + reported_note(report) + "\n"
            + table([[str(line), f"{r:,}", f"{s:,}"] for line, r, s in rows] + [total],
                    ["line", "reported", "simulated"]))


def request_text(report: Report, line: int) -> str:
    """One request in full: its numbers, its match, its cause with rule and detail, its problems, and its bills."""
    at = next((i for i, f in enumerate(report.diagnosis.findings) if f.line == line), None)
    if at is None:
        lines = [f.line for f in report.diagnosis.findings]
        raise WorkbookError(f"The log has no request at line {line}: its lines run from {lines[0]} to {lines[-1]}.")
    f, record = report.diagnosis.findings[at], report.records[at]
    out = [f"Request at line {line}" + ("" if f.at_s is None else f", sent at {duration(f.at_s)}")
           + (f", model {record.model}" if record.model else "") + f", call type {f.stream}",
           table([["prompt tokens", f"{f.tokens:,}"], ["static tokens", f"{f.static_tokens:,}"],
                  ["shared with an earlier request", f"{f.shared_tokens:,}"], ["tokens lost", f"{f.lost_tokens:,}"]]),
           "First request of its call type." if f.match_line is None else f"Best earlier match: line {f.match_line}."]
    for cause in ([f.cause] if f.cause else []) + list(f.problems):
        out.append(f"{cause.name}: {cause.rule}\n  {cause.detail}")
    if f.char_at is not None:
        out.append(f"first differing character: {f.char_at:,}, in {f.part}\n  line {f.match_line}: {f.before!r}\n"
                   f"  line {f.line}: {f.after!r}")
    out.append("Billed (simulated):\n" + "\n".join(f"  {key}: ${bills[at].cost_usd:,.6f}; {bills[at].why}"
                                                   for key, bills in report.now.bills.items()))
    return "\n\n".join(out)


def as_json(report: Report, source: str, top: int) -> dict:
    """The report as plain data: totals, per cause its first and worst requests, every finding, costs and fixes."""
    d = report.diagnosis
    findings = [finding_json(f) for f in d.findings]
    causes = []
    for name, count, lost, meaning in cause_rows(report):
        hit = [i for i, f in enumerate(d.findings) if has_cause(f, name)]
        worst = sorted(hit, key=lambda i: (-d.findings[i].lost_tokens, i))[:top]
        causes.append({"cause": name, "healthy": name in HEALTHY, "requests": count, "tokens_lost": lost,
                       "meaning": meaning, "first": d.findings[hit[0]].line,
                       "worst": [d.findings[i].line for i in worst]})
    return {"log": str(source), "requests": len(d.findings), "call_types": len(d.streams()), "prompt_tokens": d.tokens,
            "hit_rate_achieved": report.achieved_hit_rate, "achieved_from": "reported" if report.reported else "simulated",
            "hit_rate_achievable": report.achievable_hit_rate, "tokenizer": d.tokenizer_name,
            "reported_tokens_per_counted": report.calibration,
            "causes": causes, "cost_now_usd": report.cost_now_usd,
            "fixes": [{**asdict(fix), "lowers_the_bill": report.helps(fix)} for fix in report.fix_results],
            "best_fix": best_fix_line(report), "findings": findings}


def finding_json(f: Finding) -> dict:
    data = asdict(f)
    data["cause"] = None if f.cause is None else asdict(f.cause)
    data["problems"] = [asdict(p) for p in f.problems]
    return data


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Rows as aligned columns: numbers right-aligned, text left-aligned, the last column never padded."""
    lines = ([header] if header else []) + rows
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    numeric = [all(NUMBER.fullmatch(row[c]) for row in rows if row[c]) for c in range(len(widths))]
    out = ["  ".join(cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(line, widths, numeric)).rstrip()
           for line in lines]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
