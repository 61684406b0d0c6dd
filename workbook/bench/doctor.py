"""The cache doctor on a big log: `diagnose` timed on a synthetic 10,000-request log built from the example log.

The synthetic log repeats the 12 example requests (the Harbor & Pine support bot) a few seconds apart, with
the clock in the system prompt moved to each request's time and a ticket number on each question, so most
requests carry text no earlier request had, as real traffic does. The doctor runs in one Python thread;
the wall and CPU times are printed side by side to show it.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from ..doctor import diagnose
from ..paths import DATA_DIR
from ..timing import Timing, device_name, save_results

EXAMPLE = DATA_DIR / "examples" / "anthropic_log.jsonl"
GAP_S = 7  # seconds between synthetic requests: well inside every provider's cache lifetime
GOAL_S = 30.0  # the doctor should read a day's log of a small app while you wait
CLOCK = "%Y-%m-%d %H:%M:%S"  # how the example's system prompt writes the time
DEFAULT_PROVIDERS = ("anthropic/claude-sonnet-4-5",)


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=10_000, help="requests in the synthetic log")
    parser.add_argument("--provider", action="append", default=None, help="price sheet key; repeat for several "
                        f"(default: {', '.join(DEFAULT_PROVIDERS)})")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200 requests: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false",
                        help="print only; do not write data/benchmarks/")


def run(*, requests: int = 10_000, provider: list[str] | None = None, repeats: int = 1, quick: bool = False,
        save: bool = True) -> dict:
    """Time `diagnose` on a synthetic log of `requests` requests; print, and (unless `quick` or not `save`) save."""
    requests = 200 if quick else requests
    providers = list(provider or DEFAULT_PROVIDERS)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synthetic_log.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_log(requests)), encoding="utf-8")
        wall, cpu, report = [], [], None
        for _ in range(repeats):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            report = diagnose(path, provider=providers)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
    timing = Timing.from_samples(wall, device_name=device_name("cpu"), warmup=0)
    payload = {"requests": requests, "prompt_tokens": report.diagnosis.tokens, "providers": providers,
               "diagnose": timing, "cpu_s": min(cpu), "threads": 1, "goal_s": GOAL_S,  # pure Python: CPU ≈ wall
               "hit_rate": report.diagnosis.hit_rate, "achievable_hit_rate": report.diagnosis.achievable_hit_rate,
               "causes": dict(report.diagnosis.causes)}
    print_report(payload)
    if save and not quick:
        print(f"saved to {save_results('doctor', payload, device='cpu')}")
    return payload


def synthetic_log(requests: int, example: Path = EXAMPLE) -> list[dict]:
    """`requests` requests cycling through the example log, GAP_S apart, each with its own clock and ticket number."""
    lines = [line for line in example.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = _parse(json.loads(lines[0])["timestamp"])
    out = []
    for i in range(requests):
        request = json.loads(lines[i % len(lines)])  # a fresh copy to edit
        old, new = _parse(request["timestamp"]), start + dt.timedelta(seconds=i * GAP_S)
        request["timestamp"] = new.strftime("%Y-%m-%dT%H:%M:%SZ")
        for block in request["system"]:
            block["text"] = block["text"].replace(old.strftime(CLOCK), new.strftime(CLOCK))
        request["messages"][-1]["content"] += f" (ticket {i + 1})"
        out.append(request)
    return out


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def print_report(payload: dict) -> None:
    t: Timing = payload["diagnose"]
    print(f"\nCache doctor on a synthetic log: {payload['requests']:,} requests, {payload['prompt_tokens']:,} prompt "
          f"tokens, priced at {', '.join(payload['providers'])}")
    print(f"diagnose: {t.median_s:.1f} s wall (median of {t.repeats}), {payload['cpu_s']:.1f} s CPU, one Python "
          f"thread on {t.device_name}; goal {GOAL_S:.0f} s; "
          f"{t.median_s / payload['requests'] * 1e3:.2f} ms per request")
    print(f"hit rate {payload['hit_rate']:.1%} achieved, {payload['achievable_hit_rate']:.1%} achievable; causes: "
          + ", ".join(f"{name} {n:,}" for name, n in sorted(payload["causes"].items(), key=lambda kv: -kv[1])))
