"""`python -m workbook.fleet`: N `workbook.serve` replicas behind a real router, and what each routing policy gives."""

from __future__ import annotations

import json
from pathlib import Path

from .processes import Fleet
from .workload import PolicyReport, replay, report, request_log, scrape, workload

__all__ = ["Fleet", "PolicyReport", "replay", "report", "request_log", "run_policy", "scrape", "workload"]


def run_policy(fleet: Fleet, router: str, policy: str, bursts, max_tokens: int = 4,
               log: Path | None = None) -> PolicyReport:
    """Replay `bursts` through a fresh `router` with `policy` in front of `fleet`; what every replica saw.

    `log`: also write the run as a request log (JSON lines, each request with the usage it got back).
    """
    import asyncio

    urls = fleet.urls
    child = fleet.router(router, policy)
    try:
        before = [scrape(u) for u in urls]
        answers = asyncio.run(replay(child.url, fleet.settings["model"], bursts, max_tokens))
        after = [scrape(u) for u in urls]
    finally:
        child.stop()
    if log is not None:
        lines = request_log(fleet.settings["model"], bursts, answers)
        log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return report(policy, answers, before, after, urls)
