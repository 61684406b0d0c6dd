"""The cache doctor measured: on a big log (time and peak memory), and side by side with promptcachelint.

`python -m workbook.bench doctor --size 50MB` writes a synthetic log of that size (the 12 example requests
of the Harbor & Pine support bot cycled a few seconds apart, each with its own clock in the system prompt and
a ticket number on its question, so most requests carry text no earlier one had, as real traffic does; or
`--requests N` of them), streams it through `diagnose` in a fresh process, and prints the wall and CPU time and the
peak memory, with the machine's load average, since other work on a shared machine stretches the wall time.
CPU time is the diagnosing process's and its workers' (`--workers`, the processes that replay the fixed logs),
summed; memory is the diagnosing process's maximum resident set (`ru_maxrss`, and how much of it the imports took
before the log was read; the doctor does not load torch), the largest worker's, and, on Linux, the peak of all of
them together counted without double-counting the pages a forked worker shares with its parent (PSS, sampled
every 0.2 s).

`python -m workbook.bench doctor --against promptcachelint` compares the doctor's causes with promptcachelint's
on the example and pattern logs (`doctor_compare`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..paths import DATA_DIR
from ..timing import save_results

EXAMPLE = DATA_DIR / "examples" / "anthropic_log.jsonl"
GAP_S = 7  # seconds between synthetic requests: well inside every provider's cache lifetime
GOAL_S, GOAL_MB = 10.0, 300.0  # issue 28: a 50 MB log in 10 s and 300 MB on this 2-core machine
CLOCK = "%Y-%m-%d %H:%M:%S"  # how the example's system prompt writes the time
DEFAULT_PROVIDERS = ("anthropic/claude-sonnet-4-5",)


def add_arguments(parser) -> None:
    parser.add_argument("--size", default="50MB", help="size of the synthetic log, e.g. 50MB or 500KB")
    parser.add_argument("--requests", type=int, default=None, help="write this many requests instead of --size")
    parser.add_argument("--stream", action="store_true",
                        help="read the log from its file once per pass, as a log too big to hold is read")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes replaying the fixed logs (default: the doctor's, every core for a long log)")
    parser.add_argument("--against", choices=["promptcachelint"], default=None,
                        help="compare the doctor's causes with another tool's on the example and pattern logs")
    parser.add_argument("--provider", action="append", default=None, help="price sheet key; repeat for several "
                        f"(default: {', '.join(DEFAULT_PROVIDERS)})")
    parser.add_argument("--quick", action="store_true", help="a 2 MB log: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="print only; do not write data/benchmarks/")


def run(*, size: str = "50MB", requests: int | None = None, workers: int | None = None, stream: bool = False,
        against: str | None = None, provider: list[str] | None = None, quick: bool = False, save: bool = True) -> dict:
    if against:
        from .doctor_compare import compare

        return compare(save=save)
    return measure(size="2MB" if quick else size, requests=None if quick else requests, workers=workers,
                   stream=stream, providers=list(provider or DEFAULT_PROVIDERS), save=save and not quick)


# ----- size: time and peak memory ------------------------------------------------------------------------------

def parse_size(size: str) -> int:
    """Bytes in '50MB', '500KB', '1GB' or a plain number."""
    text = size.strip().upper()
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def measure(*, size: str, providers: list[str], save: bool, requests: int | None = None,
            workers: int | None = None, stream: bool = False) -> dict:
    """Write a synthetic log of `size` (or of `requests` requests), diagnose it in a fresh Python process (`stream`:
    reading it once per pass whatever its size), report time and peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic_log.jsonl"
        requests = write_synthetic_log(path, parse_size(size), requests=requests)
        load_before = os.getloadavg()[0]
        child = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(providers), json.dumps(workers),
                                json.dumps(stream)], capture_output=True, text=True, check=False)
        if child.returncode:
            raise RuntimeError(f"diagnose failed on the synthetic log:\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        payload = {"log_bytes": path.stat().st_size, "requests": requests, "providers": providers, **result,
                   "load_average_1m": os.getloadavg()[0], "load_average_1m_before": load_before, "cpu_count": os.cpu_count(), "goal_s": GOAL_S,
                   "goal_mb": GOAL_MB}
    print_measurement(payload)
    if save:
        print(f"saved to {save_results('doctor', payload, device='cpu')}")
    return payload


# Run in a fresh interpreter so that ru_maxrss is the doctor's peak, not this process's.
CHILD = """
import json, os, resource, sys, threading, time
from pathlib import Path
import workbook.doctor
from workbook.doctor import diagnose
if json.loads(sys.argv[4]):
    workbook.doctor.IN_MEMORY_CHARS = 0  # read from the file once per pass

def pss_mb(pid):
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        return next(int(line.split()[1]) for line in lines if line.startswith("Pss:")) / 1024
    except (OSError, StopIteration, ValueError):
        return None

def children():
    tasks = Path("/proc/self/task")
    return [int(pid) for task in tasks.iterdir() for pid in (task / "children").read_text().split()]

peak_pss, finished = [pss_mb(os.getpid())], threading.Event()
def sample():  # the doctor and its forked workers together, pages they share counted once
    while peak_pss[0] is not None and not finished.wait(0.2):
        sizes = [pss_mb(pid) for pid in [os.getpid(), *children()]]
        peak_pss[0] = max(peak_pss[0], sum(size for size in sizes if size is not None))

import_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the imports, before the log is read
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start_wall, start_cpu = time.perf_counter(), time.process_time()
report = diagnose(sys.argv[1], provider=json.loads(sys.argv[2]), workers=json.loads(sys.argv[3]))
wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
finished.set()
sampler.join()
workers = resource.getrusage(resource.RUSAGE_CHILDREN)
d = report.diagnosis
print(json.dumps({"wall_s": wall, "cpu_s": cpu + workers.ru_utime + workers.ru_stime,
                  "workers_cpu_s": workers.ru_utime + workers.ru_stime,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_mb": workers.ru_maxrss / 1024, "peak_pss_mb": peak_pss[0],
                  "import_mb": import_mb, "torch_loaded": "torch" in sys.modules, "workers": json.loads(sys.argv[3]),
                  "cores_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                  "streamed": bool(report.records) and report.records[0].parts == (),
                  "threads": threading.active_count(), "prompt_tokens": d.tokens, "hit_rate": d.hit_rate,
                  "causes": dict(d.causes)}))
"""


def write_synthetic_log(path: Path, size: int, example: Path = EXAMPLE, requests: int | None = None) -> int:
    """Example requests cycled GAP_S apart, each with its own clock and ticket number, until `size` bytes (or
    `requests` requests); returns how many requests were written. Written line by line: the log is never held in
    memory."""
    lines = [line for line in example.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = _parse(json.loads(lines[0])["timestamp"])
    written = count = 0
    with path.open("w", encoding="utf-8") as out:
        while (count < requests) if requests is not None else (written < size):
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


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def print_measurement(p: dict) -> None:
    print(f"\nCache doctor on a synthetic log: {p['log_bytes'] / 1e6:.1f} MB, {p['requests']:,} requests, "
          f"{p['prompt_tokens']:,} prompt tokens, priced at {', '.join(p['providers'])}"
          + (" (streamed: read from the file once per pass)" if p.get("streamed") else ""))
    pss = "" if p.get("peak_pss_mb") is None else f"; all processes together peak at {p['peak_pss_mb']:.0f} MB (PSS)"
    print(f"diagnose: {p['wall_s']:.1f} s wall, {p['cpu_s']:.1f} s CPU ({p['workers_cpu_s']:.1f} s of it in worker "
          f"processes; workers={p['workers'] if p['workers'] is not None else 'default'}), "
          f"peak {p['peak_mb']:.0f} MB resident ({p['import_mb']:.0f} MB of it taken by the imports, before the log "
          f"is read), largest worker {p['worker_peak_mb']:.0f} MB{pss}; {p['threads']} Python thread(s); "
          f"goal {GOAL_S:.0f} s and {GOAL_MB:.0f} MB; {p['cpu_s'] / p['requests'] * 1e3:.2f} ms of CPU per request; "
          f"load average {p['load_average_1m_before']:.2f} before, {p['load_average_1m']:.2f} after, on "
          f"{p['cpu_count']} cores")
    print(f"hit rate {p['hit_rate']:.1%}; causes: "
          + ", ".join(f"{name} {n:,}" for name, n in sorted(p["causes"].items(), key=lambda kv: -kv[1])))
