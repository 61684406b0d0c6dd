"""`python -m workbook.fleet`: N `workbook.serve` replicas behind a real router, and what each routing policy gives."""

from .processes import Fleet
from .workload import PolicyReport, replay, report, scrape, workload

__all__ = ["Fleet", "PolicyReport", "replay", "report", "run_policy", "scrape", "workload"]


def run_policy(fleet: Fleet, router: str, policy: str, bursts, max_tokens: int = 4) -> PolicyReport:
    """Replay `bursts` through a fresh `router` with `policy` in front of `fleet`; what every replica saw."""
    import asyncio

    urls = [r.url for r in fleet.replicas]
    child = fleet.router(router, policy)
    try:
        before = [scrape(u) for u in urls]
        answers = asyncio.run(replay(child.url, fleet.settings["model"], bursts, max_tokens))
        return report(policy, answers, before, [scrape(u) for u in urls], urls)
    finally:
        child.stop()
