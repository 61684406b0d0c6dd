"""`python -m workbook.doctor LOG [--provider KEY ...] [--html report.html] [--tokenizer NAME]`: diagnose a request log.

Prints where cache hits break, why, what the log costs at each provider and what each fix would save; with
`--html`, also writes a self-contained report. Bad input prints its message to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

from ..errors import WorkbookError
from . import DEFAULT_TOKENIZER, Report, diagnose
from .report_html import best_fix_line, cause_rows, cost_after, reported_note, tokenizer_note, write_html

DEFAULT_PROVIDER = "anthropic/claude-sonnet-4-5"
NUMBER = re.compile(r"[-+±$\d.,%() ]+")  # a cell right-aligned as a number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m workbook.doctor", description=__doc__.split("\n\n")[1])
    p.add_argument("log", help="a JSONL request log (OpenAI or Anthropic shape) or a .json list of rendered prompts")
    p.add_argument("--provider", action="append", metavar="KEY",
                   help=f"a price sheet key, e.g. openai/gpt-5.5; repeat for several (default: {DEFAULT_PROVIDER})")
    p.add_argument("--html", metavar="PATH", help="also write the report as one self-contained HTML page")
    p.add_argument("--tokenizer", default=None, metavar="NAME",
                   help=f"a shipped tokenizer, a checkpoint folder or a cached hub name (default: {DEFAULT_TOKENIZER})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 for bad input)."""
    args = parser().parse_args(argv)
    try:
        report = diagnose(args.log, provider=args.provider or [DEFAULT_PROVIDER], tokenizer=args.tokenizer)
    except WorkbookError as error:  # the message names the line or the known ids; a traceback would add nothing
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(report, args.log))
    if args.html:
        try:
            path = write_html(report, args.html, source=args.log)
        except OSError as error:
            print(f"error: cannot write {args.html}: {error.strerror or error}", file=sys.stderr)
            return 2
        print(f"\nHTML report written to {path}")
    return 0


def summary(report: Report, source: str) -> str:
    """The report as plain-text tables."""
    sections = [overview(report, source), causes_table(report), costs_table(report), reported_table(report),
                tokenizer_note(report)]
    return "\n\n".join(s for s in sections if s)


def overview(report: Report, source: str) -> str:
    d = report.diagnosis
    return f"Cache doctor: {source}\n" + table([
        ["requests", f"{len(d.findings):,}", ""],
        ["prompt tokens", f"{d.tokens:,}", ""],
        ["hit rate achieved", f"{d.hit_rate:.1%}", "prompt tokens an ideal prefix cache would reuse"],
        ["hit rate achievable", f"{d.achievable_hit_rate:.1%}", "the same if every static region were byte-stable"],
    ])


def causes_table(report: Report) -> str:
    rows = cause_rows(report)
    if not rows:
        return "No request broke the prefix of an earlier one."
    return "What broke the prefix\n" + table([[name, f"{n:,}", f"{lost:,}", rule] for name, n, lost, rule in rows],
                                             ["cause", "requests", "tokens lost", "what it means"])


def costs_table(report: Report) -> str:
    keys = report.model_keys
    rows = [["now", f"{report.diagnosis.hit_rate:.1%}", *(f"${usd:,.4f}" for usd in report.cost_now_usd.values()),
             "the log as it is"]]
    rows += [[fix.name, f"{fix.hit_rate:.1%}",
              *(cost_after(report, fix, key) for key in keys), fix.does]
             for fix in report.fix_results]
    return ("Cost of the whole log, now and after each fix (simulated)\n"
            + table(rows, ["fix", "hit rate", *keys, "what it does"]) + "\n" + best_fix_line(report))


def reported_table(report: Report) -> str:
    rows = report.reported_vs_simulated()
    if not rows:
        return ""
    total = ["total", f"{sum(r for _, r, _ in rows):,}", f"{sum(s for _, _, s in rows):,}"]
    return ("Cached tokens, reported in the log and simulated\n" + reported_note(report) + "\n"
            + table([[str(line), f"{r:,}", f"{s:,}"] for line, r, s in rows] + [total],
                    ["line", "reported", "simulated"]))


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
