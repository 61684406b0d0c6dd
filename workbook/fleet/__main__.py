"""`python -m workbook.fleet --replicas 4 --router sglang --policy cache_aware round_robin`: start the replicas,
replay one multi-tenant workload through the router once per policy (each run with prefixes of its own), report
hit rate, TTFT and requests per replica, and stop every child process. With `--worker-urls`, the replicas are
servers already running elsewhere (`python -m workbook.serve --host 0.0.0.0` on each machine): only the router
is started, here, in front of them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import WorkbookError
from . import Fleet, run_policy, workload
from .processes import POLICIES, ROUTERS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbook.fleet", description=__doc__)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--worker-urls", nargs="+", metavar="URL",
                        help="route to these running servers (http://host:port each) instead of starting replicas")
    parser.add_argument("--router", choices=ROUTERS, default="sglang")
    parser.add_argument("--policy", nargs="+", choices=POLICIES, default=["cache_aware", "round_robin"])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tenants", type=int, default=4, help="system prompts (default 4)")
    parser.add_argument("--requests", type=int, default=64, help="requests per policy (default 64)")
    parser.add_argument("--burst", type=int, default=8, help="requests sent at once (default 8)")
    parser.add_argument("--repeat", type=int, default=4,
                        help="each system prompt holds the rules this many times (default 4; 16 passes 1,024 tokens)")
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the reports to this file")
    parser.add_argument("--logs", type=Path, help="also write each policy's request log to DIR/POLICY.jsonl")
    args = parser.parse_args(argv)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        with Fleet(args.replicas, model=args.model, worker_urls=args.worker_urls) as fleet:
            for policy in args.policy:
                bursts = workload(policy, tenants=args.tenants, requests=args.requests, burst=args.burst,
                                  repeat=args.repeat)
                log = args.logs / f"{policy}.jsonl" if args.logs else None
                reports.append(run_policy(fleet, args.router, policy, bursts, args.max_tokens, log))
                print("\n".join(reports[-1].lines()), flush=True)
    except WorkbookError as error:
        parser.error(str(error))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=2))


if __name__ == "__main__":
    main()
