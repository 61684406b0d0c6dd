"""The cache doctor measured: on a big log (time and peak memory), and side by side with promptcachelint.

`python -m workbook.bench doctor --size 50MB` writes a synthetic log of that size (the 12 example requests
of the Harbor & Pine support bot cycled a few seconds apart, each with its own clock in the system prompt and
a ticket number on its question, so most requests carry text no earlier one had, as real traffic does),
streams it through `diagnose` in a fresh process, and prints the wall and CPU time and the peak memory
(the process's maximum resident set, `ru_maxrss`, and how much of it the imports took before the log was read:
`import workbook` loads torch, which the doctor does not use).

`python -m workbook.bench doctor --against promptcachelint` runs the doctor and promptcachelint (PyPI; its
`promptcachelint report TRACE --json`) on the shipped example logs and the pattern logs
(`workbook.doctor.patterns`), and prints per log the expected cause, each tool's top cause and who is right.
Without promptcachelint installed it says how to install it and runs the doctor's side only.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..paths import DATA_DIR
from ..timing import BENCHMARKS_DIR, save_results

EXAMPLE = DATA_DIR / "examples" / "anthropic_log.jsonl"
GAP_S = 7  # seconds between synthetic requests: well inside every provider's cache lifetime
GOAL_S, GOAL_MB = 10.0, 300.0  # issue 28: a 50 MB log in 10 s and 300 MB on this 2-core machine
CLOCK = "%Y-%m-%d %H:%M:%S"  # how the example's system prompt writes the time
DEFAULT_PROVIDERS = ("anthropic/claude-sonnet-4-5",)
INSTALL = "pip install promptcachelint  (or: pip install -e '.[bench]'; Python 3.11 or newer)"


def add_arguments(parser) -> None:
    parser.add_argument("--size", default="50MB", help="size of the synthetic log, e.g. 50MB or 500KB")
    parser.add_argument("--against", choices=["promptcachelint"], default=None,
                        help="compare the doctor's causes with another tool's on the example and pattern logs")
    parser.add_argument("--provider", action="append", default=None, help="price sheet key; repeat for several "
                        f"(default: {', '.join(DEFAULT_PROVIDERS)})")
    parser.add_argument("--quick", action="store_true", help="a 2 MB log: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="print only; do not write data/benchmarks/")


def run(*, size: str = "50MB", against: str | None = None, provider: list[str] | None = None, quick: bool = False,
        save: bool = True) -> dict:
    if against:
        return compare(save=save)
    return measure(size="2MB" if quick else size, providers=list(provider or DEFAULT_PROVIDERS),
                   save=save and not quick)


# ----- size: time and peak memory ------------------------------------------------------------------------------

def parse_size(size: str) -> int:
    """Bytes in '50MB', '500KB', '1GB' or a plain number."""
    text = size.strip().upper()
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def measure(*, size: str, providers: list[str], save: bool) -> dict:
    """Write a synthetic log of `size`, diagnose it in a fresh Python process, report time and peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic_log.jsonl"
        requests = write_synthetic_log(path, parse_size(size))
        child = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(providers)], capture_output=True,
                               text=True, check=False)
        if child.returncode:
            raise RuntimeError(f"diagnose failed on the synthetic log:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        payload = {"log_bytes": path.stat().st_size, "requests": requests, "providers": providers, **result,
                   "goal_s": GOAL_S, "goal_mb": GOAL_MB}
    print_measurement(payload)
    if save:
        print(f"saved to {save_results('doctor', payload, device='cpu')}")
    return payload


# Run in a fresh interpreter so that ru_maxrss is the doctor's peak, not this process's.
CHILD = """
import json, resource, sys, threading, time
from workbook.doctor import diagnose
import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # importing workbook loads torch
start_wall, start_cpu = time.perf_counter(), time.process_time()
report = diagnose(sys.argv[1], provider=json.loads(sys.argv[2]))
wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
d = report.diagnosis
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "import_mb": import_mb,
                  "threads": threading.active_count(), "prompt_tokens": d.tokens, "hit_rate": d.hit_rate,
                  "causes": dict(d.causes)}))
"""


def write_synthetic_log(path: Path, size: int, example: Path = EXAMPLE) -> int:
    """Example requests cycled GAP_S apart, each with its own clock and ticket number, until `size` bytes; returns
    how many requests were written. Written line by line: the log is never held in memory."""
    lines = [line for line in example.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = _parse(json.loads(lines[0])["timestamp"])
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size:
            request = json.loads(lines[count % len(lines)])  # a fresh copy to edit
            old, new = _parse(request["timestamp"]), start + dt.timedelta(seconds=count * GAP_S)
            request["timestamp"] = new.strftime("%Y-%m-%dT%H:%M:%SZ")
            for block in request["system"]:
                block["text"] = block["text"].replace(old.strftime(CLOCK), new.strftime(CLOCK))
            request["messages"][-1]["content"] += f" (ticket {count + 1})"
            line = json.dumps(request, ensure_ascii=False) + "\n"
            written += out.write(line)
            count += 1
    return count


def synthetic_log(requests: int, example: Path = EXAMPLE) -> list[dict]:
    """The first `requests` requests of the synthetic log, as dicts (for tests and small runs)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.jsonl"
        lines = [line for line in example.read_text(encoding="utf-8").splitlines() if line.strip()]
        write_synthetic_log(path, sum(len(line) for line in lines) * (requests // len(lines) + 1))
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:requests]]


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def print_measurement(p: dict) -> None:
    print(f"\nCache doctor on a synthetic log: {p['log_bytes'] / 1e6:.1f} MB, {p['requests']:,} requests, "
          f"{p['prompt_tokens']:,} prompt tokens, priced at {', '.join(p['providers'])}")
    print(f"diagnose: {p['wall_s']:.1f} s wall, {p['cpu_s']:.1f} s CPU, peak {p['peak_mb']:.0f} MB resident "
          f"({p['import_mb']:.0f} MB of it taken by the imports, before the log is read), "
          f"{p['threads']} Python thread(s); goal {GOAL_S:.0f} s and {GOAL_MB:.0f} MB; "
          f"{p['wall_s'] / p['requests'] * 1e3:.2f} ms per request")
    print(f"hit rate {p['hit_rate']:.1%}; causes: "
          + ", ".join(f"{name} {n:,}" for name, n in sorted(p["causes"].items(), key=lambda kv: -kv[1])))


# ----- side by side with promptcachelint ----------------------------------------------------------------------------

# What the shipped example logs hold (workbook.doctor.examples): any of these is a right top cause.
EXAMPLE_CAUSES = {"anthropic_log.jsonl": ["datetime", "user_text", "json_key_order"],
                  "openai_log.jsonl": ["number", "whitespace"]}
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


COMPARISON = BENCHMARKS_DIR / "doctor_vs_promptcachelint.json"


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
        line = f"{r['log'][:24]:24} {expected[:30]:30} {('✓ ' if r['doctor_right'] else '✗ ') + name(r['doctor']):22}"
        if other:
            line += f" {('✓ ' if r['promptcachelint_right'] else '✗ ') + name(r['promptcachelint'])}"
        print(line[:width])
    print(f"\nright: the doctor {p['doctor_right']} of {p['logs']}"
          + (f", promptcachelint {p['promptcachelint']} {p['promptcachelint_right']} of {p['logs']}" if other else ""))
