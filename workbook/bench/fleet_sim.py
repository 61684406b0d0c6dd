"""The fleet simulator's own speed: 10,000 requests routed over 4 to 256 replicas, each replica a real radix tree.

The workload is `workbook.fleet.workload` at scale (64 tenants, 1,000 users), tokenized once with the shipped
tokenizer (timed apart); each policy's replay is timed in CPU seconds of this process.
"""

from __future__ import annotations

import os
import time

from ..fleet.simulate import POLICIES, simulate, tokenized
from ..fleet.workload import workload
from ..timing import save_results
from ..tokenizer import load_tokenizer

GOAL_S = 30.0  # the budget for one replay of 10,000 requests on this 2-core machine


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[4, 16, 64, 256])
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def run(*, requests: int = 10_000, replicas=(4, 16, 64, 256), policies=POLICIES, save: bool = True) -> dict:
    start = time.process_time()
    bursts = tokenized(workload("bench", tenants=64, users=1_000, requests=requests), load_tokenizer("tiny"))
    tokenize_s = time.process_time() - start
    print(f"{requests:,} requests tokenized in {tokenize_s:.1f} s CPU (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    rows = []
    for n in replicas:
        for policy in policies:
            start = time.process_time()
            report = simulate(bursts, n, policy)
            rows.append(dict(replicas=n, policy=policy, cpu_s=time.process_time() - start, hit_rate=report.hit_rate,
                             busiest_share=report.busiest_share))
            print(f"  {n:>3} replicas, {policy:<15} {rows[-1]['cpu_s']:5.1f} s CPU, hit rate {report.hit_rate:6.1%}, "
                  f"busiest replica {report.busiest_share:.2f}x an even share", flush=True)
    payload = dict(requests=requests, tokenize_cpu_s=tokenize_s, runs=rows, goal_s=GOAL_S,
                   load_average=os.getloadavg()[0], cores=os.cpu_count())
    print(f"slowest replay: {max(r['cpu_s'] for r in rows):.1f} s CPU (goal: under {GOAL_S:.0f} s)")
    if save:
        print(f"saved to {save_results('fleet_sim', payload, device='cpu')}")
    return payload
