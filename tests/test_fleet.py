"""`workbook.fleet`: replicas of `python -m workbook.serve` behind a real router, on 127.0.0.1 only.

The real run starts two replicas and, in turn, a round-robin and a cache-aware router in front of
them (sglang-router, then vllm-router), replays the same sequential workload (prefixes of its
own per run) through each, and checks the simulator against it (tests/test_fleet_simulate.py checks it
against the recorded 4-replica runs).
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from workbook.doctor.logs import read_log
from workbook.errors import WorkbookError
from workbook.fleet import Fleet, request_log, run_policy, workload
from workbook.fleet.__main__ import main
from workbook.fleet.processes import ROUTERS, free_port, healthy, start_replica, start_router, wait_until
from workbook.fleet.simulate import simulate, tokenized
from workbook.tokenizer import load_tokenizer
from workbook.fleet.workload import Answer


def installed(router: str):
    """`router` as a test parameter, skipped with the reason when its package is not installed."""
    module = ROUTERS[router][0].split(".")[0]
    missing = importlib.util.find_spec(module) is None
    return pytest.param(router, marks=pytest.mark.skipif(missing, reason=f"{module} is not installed: "
                                                                         "pip install workbook[fleet]"))


def test_each_run_has_prefixes_of_its_own():
    a, b = workload("cache_aware", requests=8, burst=4), workload("round_robin", requests=8, burst=4)
    assert [len(burst) for burst in a] == [4, 4]
    first = {m[0]["content"].split()[0] for burst in a for m in burst}
    assert first.isdisjoint(m[0]["content"].split()[0] for burst in b for m in burst)
    assert [[m[1] for m in burst] for burst in a] == [[m[1] for m in burst] for burst in b]  # same users, questions


def test_unknown_router_or_policy_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(WorkbookError, match="router"):
        start_router("nginx", "round_robin", ["http://127.0.0.1:1"], tmp_path)
    with pytest.raises(WorkbookError, match="policy"):
        start_router("sglang", "consistent_hash", ["http://127.0.0.1:1"], tmp_path)  # vllm-router's, not sglang's
    assert not list(tmp_path.iterdir())  # no log: no process was started


def test_other_machines_replicas_are_checked_not_started(tmp_path):
    with pytest.raises(WorkbookError, match="each once"):
        Fleet(0, worker_urls=["http://10.0.0.2:8000", "http://10.0.0.2:8000"])
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(WorkbookError, match=url.replace(".", r"\.")):
        with Fleet(4, worker_urls=[url]) as fleet:
            pass
    fleet = Fleet(4, worker_urls=[url, url + "1"])
    assert fleet.count == 2 and fleet.urls == [url, url + "1"] and fleet.replicas == []


def test_the_command_names_an_unreachable_worker_url(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SystemExit) as stop:
        main(["--worker-urls", url, "--policy", "round_robin"])
    assert stop.value.code == 2 and url in capsys.readouterr().err


def test_a_runs_request_log_is_what_the_doctor_reads(tmp_path):
    bursts = workload("log", tenants=2, requests=4, burst=2)
    answers = [Answer(1.8e9 + i, 0.1, 100 + i, 16 * i) for i in range(4)]
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in request_log("tiny", bursts, answers)))
    records = read_log(path)
    assert [(r.reported_input, r.reported_cached) for r in records] == [(100 + i, 16 * i) for i in range(4)]
    with pytest.raises(ValueError):
        request_log("tiny", bursts, answers[:3])  # one answer per request, in the order sent


@pytest.mark.slow
@pytest.mark.parametrize("router", [installed("sglang"), installed("vllm")])
def test_two_replicas_behind_a_real_router(router):
    with Fleet(2, prefix_cache_tokens=4096) as fleet:
        reports = {p: run_policy(fleet, router, p, workload(p, tenants=2, requests=12, burst=1))
                   for p in ("round_robin", "cache_aware")}
        replicas = fleet.replicas
    assert all(r.proc.poll() is not None for r in replicas)  # the fleet stopped its children
    for policy, rep in reports.items():
        assert rep.requests == 12 == sum(r.requests for r in rep.replicas)  # each routed once, none lost or retried
        served = sum(r.cached_tokens for r in rep.replicas) / sum(r.prompt_tokens for r in rep.replicas)
        assert rep.hit_rate == pytest.approx(served)  # the clients' usage and the replicas' counters agree
    assert sorted(r.requests for r in reports["round_robin"].replicas) == [6, 6]
    # Sequential requests, two tenants, two replicas: round robin sends each tenant to both replicas (a cold miss
    # on each); cache-aware routing keeps requests where their prefix is (vllm-router 0.1.17 sent every request to
    # one replica when they came one at a time), so it misses less.
    assert reports["cache_aware"].hit_rate > reports["round_robin"].hit_rate
    # The simulator on the same requests, sent one at a time: the same hit rate within a few points.
    tok = load_tokenizer("tiny")
    for policy, rep in reports.items():
        bursts = tokenized(workload(policy, tenants=2, requests=12, burst=1), tok)
        assert abs(simulate(bursts, 2, policy, capacity_tokens=4096).hit_rate - rep.hit_rate) < 0.05, policy


@pytest.mark.slow
@pytest.mark.parametrize("router", [installed("sglang")])
def test_the_router_fronts_servers_that_run_elsewhere_given_by_url(router, tmp_path):
    """--worker-urls: servers started apart from the fleet (here on loopback, as another machine's would be) are
    routed to, and left running when the fleet stops."""
    servers = [start_replica(i, tmp_path, model="tiny", prefix_cache_tokens=4096, page_size=16) for i in range(2)]
    try:
        for server in servers:
            wait_until(lambda: healthy(server), server, 300)
        with Fleet(0, worker_urls=[s.url for s in servers]) as fleet:
            report = run_policy(fleet, router, "round_robin", workload("remote", tenants=1, requests=4, burst=1),
                                log=tmp_path / "remote.jsonl")
        assert sorted(r.requests for r in report.replicas) == [2, 2]
        assert len(read_log(tmp_path / "remote.jsonl")) == 4
        assert all(s.proc.poll() is None for s in servers)  # not the fleet's to stop
    finally:
        for server in servers:
            server.stop()
