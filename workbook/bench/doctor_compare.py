"""The cache doctor beside promptcachelint: `python -m workbook.bench doctor --against promptcachelint`.

Both tools run on the shipped example logs and the pattern logs (`workbook.doctor.patterns`); per log the table
gives the expected cause, each tool's top cause in the doctor's words, and who is right. promptcachelint (PyPI)
runs as its command, `promptcachelint report TRACE --json`, on the log converted to its trace format. A cause
counts only where a tool names it. Without promptcachelint installed the table has the doctor's side only, and
says how to install it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from ..paths import DATA_DIR
from ..timing import BENCHMARKS_DIR, save_results

INSTALL = "pip install promptcachelint  (or: pip install -e '.[bench]'; Python 3.11 or newer)"
COMPARISON = BENCHMARKS_DIR / "doctor_vs_promptcachelint.json"
UNREADABLE = "(log not read)"  # promptcachelint's answer on a log it skips whole

# What the shipped example logs hold (workbook.doctor.examples): any of these is a right top cause.
EXAMPLE_CAUSES = {"anthropic_log.jsonl": ["datetime", "user_text", "json_key_order"],
                  "openai_log.jsonl": ["number", "whitespace"],
                  "agent_log.jsonl": ["json_key_order", "ttl_expiry", "model_switch"]}
# Problems for which the API refuses the request (400): nothing is lost to the cache, yet they are the cause.
REFUSED = ("too_many_breakpoints", "ttl_order")
# promptcachelint's finding codes (`promptcachelint codes`) in the doctor's words.
PCL_CAUSES = {"CL002": "tool_list", "CL004": "breakpoint_moved", "CL005": "unexplained_miss", "CL006": "ttl_expiry",
              "CL007": "lookback_exceeded", "CL013": "too_many_breakpoints", "CL014": "volatile_breakpoint"}
PCL_SCOPE = {"model": "model_switch", "prompt_cache_key": "cache_key"}  # CL003, by the parameter that changed
PCL_ADVICE = ("CL010", "CL011", "CL012")  # single-request advice (no breakpoint, too short, looks volatile)
# CL012's patterns: a break (CL001) in a segment CL012 found volatile names that pattern's cause.
PCL_VOLATILE = {"iso-datetime": "datetime", "date-phrase": "datetime", "rfc-date": "datetime", "uuid": "number",
                "hex-id": "number"}


def logs_to_compare() -> list[dict]:
    """The logs of the comparison: the shipped examples, then every pattern log; each with its expected causes."""
    from ..doctor.patterns import PATTERNS_DIR, load_index

    examples = [{"name": name, "path": DATA_DIR / "examples" / name, "expected": causes, "source": "shipped example"}
                for name, causes in EXAMPLE_CAUSES.items()]
    return examples + [{"name": p["name"], "path": PATTERNS_DIR / p["file"],
                        "expected": [p["expected"]] if p["expected"] else [None], "source": p["source"]}
                       for p in load_index()]


def doctor_top(path: Path) -> tuple[str | None, dict]:
    """The doctor's top cause on a log: the one that lost most tokens; with none lost, a problem the API refuses;
    else None (healthy)."""
    from ..doctor import diagnose

    diagnosis = diagnose(path).diagnosis
    lost = {name: n for name, n in diagnosis.lost_by_cause().items() if n > 0}
    if lost:
        return max(lost, key=lost.get), lost
    refused = [name for name in REFUSED if diagnosis.causes.get(name)]
    return (refused[0] if refused else None), dict(diagnosis.causes)


def promptcachelint_trace(path: Path, out: Path) -> None:
    """A log as promptcachelint's JSONL trace: one {"provider", "body", "at", "model", "usage"} per request."""
    from ..doctor.logs import iter_items, iter_records
    from ..doctor.proxies import unwrap

    with out.open("w", encoding="utf-8") as trace:
        for (_, item), r in zip(iter_items(path), iter_records(path)):
            request, _, parts = unwrap(item, r.line)
            body = ({k: v for k, v in request.items() if k not in ("timestamp", "usage", "provider", "error")}
                    if parts is None else body_from_parts(r))
            usage = None
            if r.reported_input is not None:
                read, written = r.reported_cached or 0, r.reported_written or 0
                usage = {"input_tokens": r.reported_input - read - written, "cache_read": read,
                         "cache_write": written, "output_tokens": r.output_tokens}
            trace.write(json.dumps({"provider": r.provider, "body": body, "at": r.at_s or 0.0, "model": r.model,
                                    "usage": usage}) + "\n")


def body_from_parts(r) -> dict:
    """An OpenAI Chat body from a record's parts, for a log that carries no request body (OpenTelemetry spans)."""
    return {"model": r.model, "messages": [{"role": p.role or "user", "content": p.text} for p in r.parts]}


def promptcachelint_top(path: Path) -> tuple[str | None, dict]:
    """promptcachelint's top cause on a log: the cause (in the doctor's words) on most requests."""
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.jsonl"
        promptcachelint_trace(path, trace)
        done = subprocess.run([sys.executable, "-m", "promptcachelint.cli", "report", str(trace), "--json"],
                              capture_output=True, text=True, check=False)
    if done.returncode == 2 and "no records" in done.stderr:  # e.g. a Gemini log: promptcachelint reads two providers
        return UNREADABLE, {"promptcachelint": done.stderr.strip()}
    if done.returncode not in (0, 1):
        raise RuntimeError(f"promptcachelint failed on {path.name}: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    per_request = Counter()
    for session in report["sessions"]:
        volatile = {f["path"]: PCL_VOLATILE.get((f.get("data") or {}).get("pattern"), "content")
                    for request in session["requests"] for f in request["findings"] if f["code"] == "CL012"}
        for request in session["requests"]:
            per_request.update({pcl_cause(f, volatile) for f in request["findings"] if f["code"] not in PCL_ADVICE})
    return (per_request.most_common(1)[0][0] if per_request else None), dict(per_request)


def pcl_cause(finding: dict, volatile: dict[str, str]) -> str:
    """A promptcachelint finding's cause in the doctor's words; `volatile` maps segments CL012 flagged to a cause.
    A cause counts only where the finding names it: a break in the history that promptcachelint calls "history
    edited" names the place of a reordered argument, not its cause."""
    code, data = finding["code"], finding.get("data") or {}
    if code == "CL003":
        return PCL_SCOPE.get(data.get("key"), f"scope:{data.get('key')}")
    if code == "CL001":
        if data.get("history_edited") or data.get("window_slid"):
            return "history_rewritten"
        return volatile.get(finding.get("path"), "content")
    return PCL_CAUSES.get(code, code)


def has_promptcachelint() -> bool:
    try:
        import promptcachelint  # noqa: F401
    except ImportError:
        return False
    return True


def compare(*, save: bool = True) -> dict:
    """Both tools on every log; prints the table and (unless not `save`) writes it as JSON."""
    other = has_promptcachelint()
    if not other:
        print(f"promptcachelint is not installed: {INSTALL}. Running the doctor's side only.")
    rows = []
    for log in logs_to_compare():
        row = {"log": log["name"], "expected": log["expected"], "source": log["source"]}
        row["doctor"], row["doctor_causes"] = doctor_top(log["path"])
        row["doctor_right"] = row["doctor"] in log["expected"]
        if other:
            row["promptcachelint"], row["promptcachelint_causes"] = promptcachelint_top(log["path"])
            row["promptcachelint_right"] = row["promptcachelint"] in log["expected"]
        rows.append(row)
    payload = {"rows": rows, "doctor_right": sum(r["doctor_right"] for r in rows), "logs": len(rows),
               "promptcachelint": _version() if other else None,
               "promptcachelint_right": sum(r["promptcachelint_right"] for r in rows) if other else None}
    print_comparison(payload)
    if save:
        print(f"saved to {save_results('doctor_vs_promptcachelint', payload, device='cpu', path=COMPARISON)}")
    return payload


def _version() -> str:
    from importlib.metadata import version

    return version("promptcachelint")


def print_comparison(p: dict) -> None:
    def name(cause):
        return "healthy" if cause is None else cause
    other = p["promptcachelint"] is not None
    width = shutil.get_terminal_size((120, 20)).columns
    print(f"\n{'log':24} {'expected':30} {'doctor':22}{' promptcachelint' if other else ''}"[:width])
    for r in p["rows"]:
        expected = " or ".join(name(c) for c in r["expected"])
        doctor = ("✓ " if r["doctor_right"] else "✗ ") + name(r["doctor"])
        line = f"{r['log'][:24]:24} {expected[:30]:30} {doctor:22}"
        if other:
            line += f" {('✓ ' if r['promptcachelint_right'] else '✗ ') + name(r['promptcachelint'])}"
        print(line[:width])
    print(f"\nright: the doctor {p['doctor_right']} of {p['logs']}"
          + (f", promptcachelint {p['promptcachelint']} {p['promptcachelint_right']} of {p['logs']}" if other else ""))
