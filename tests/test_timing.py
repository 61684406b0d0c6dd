"""The timing harness: honest samples, untimed warm-up, device synchronisation, results on disk."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import pytest
import torch

from workbook import timing
from workbook.timing import (Stopwatch, Timing, device_name, device_slug, load_results, measure, percentile,
                             save_results)

def needs_cuda(test):
    """Mark a test `gpu` (so `python -m workbook.bench gpu` runs it) and skip it, with the reason, without CUDA."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none is available here")
    return pytest.mark.gpu(skip(test))


class FakeClock:
    """A clock that returns preset timestamps and logs each read, so tests know exactly what was timed."""

    def __init__(self, ticks, log=None):
        self.ticks = list(ticks)
        self.log = log if log is not None else []

    def __call__(self) -> float:
        self.log.append("clock")
        return self.ticks.pop(0)


def ticks_for(samples, start=100.0):
    """Clock readings (start, stop) pairs that make each timed call last `samples[i]` seconds."""
    out, t = [], start
    for s in samples:
        out += [t, t + s]
        t += s + 1.0  # a gap between calls, which must not leak into any sample
    return out


# ---------------------------------------------------------------------------------------------
# measure


def test_sleep_of_20ms_measures_about_20ms():
    t = measure(lambda: time.sleep(0.020), warmup=1, repeats=5, device="cpu")
    # sleep never returns early, so every sample is at least 20 ms. The upper bound only catches a wrong unit: a busy
    # machine wakes a sleeper late by any amount (what each sample counts is checked exactly on a fake clock below).
    assert t.min_s >= 0.0199
    assert 0.0199 <= t.median_s < 0.5
    assert t.repeats == 5 and len(t.samples_s) == 5 and t.warmup == 1


def test_warmup_calls_are_not_timed():
    log: list[str] = []

    def fn():
        log.append("fn")

    samples = [0.5, 0.25, 0.75, 1.0]
    t = measure(fn, warmup=3, repeats=4, device="cpu", clock=FakeClock(ticks_for(samples), log))
    # 3 untimed calls come first, then each timed call sits between two clock reads.
    assert log == ["fn"] * 3 + ["clock", "fn", "clock"] * 4
    assert t.samples_s == samples  # the 1-second gaps between calls are not counted
    assert t.warmup == 3 and t.repeats == 4


def test_statistics_on_a_stubbed_clock():
    samples = [0.3, 0.1, 0.5, 0.2, 0.4, 1.0, 0.6, 0.9, 0.7, 0.8]
    t = measure(lambda: None, warmup=0, repeats=10, device="cpu", clock=FakeClock(ticks_for(samples)))
    # Sorted: 0.1 .. 1.0. Median: (0.5 + 0.6) / 2 = 0.55.
    assert t.median_s == pytest.approx(0.55)
    # p10: rank 0.1 x 9 = 0.9 -> 0.1 + 0.9 x (0.2 - 0.1) = 0.19; p90: rank 8.1 -> 0.9 + 0.1 x 0.1 = 0.91.
    assert t.p10_s == pytest.approx(0.19)
    assert t.p90_s == pytest.approx(0.91)
    assert t.min_s == pytest.approx(0.1)
    assert t.mean_s == pytest.approx(0.55)
    # Sample stdev: squared deviations 2 x (0.45² + 0.35² + 0.25² + 0.15² + 0.05²) = 0.825; sqrt(0.825 / 9) = 0.30277.
    assert t.stdev_s == pytest.approx(0.302765, abs=1e-6)


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    data = [0.7, 3.0, 1.5, 2.2, 9.1, 0.1, 4.4]
    for q in (0, 10, 25, 50, 90, 100):
        assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)))


def test_single_sample_timing():
    t = Timing.from_samples([0.004], device_name="cpu: test")
    assert (t.median_s, t.p10_s, t.p90_s, t.stdev_s) == (0.004, 0.004, 0.004, 0.0)
    assert "4.000 ms" in str(t)


def test_device_is_synchronised_around_every_timed_call(monkeypatch):
    # The CPU twin of the CUDA test: a stand-in synchroniser proves the order
    # sync -> start clock -> call -> sync -> stop clock, so queued GPU work would be inside each sample.
    log: list[str] = []
    monkeypatch.setattr(timing, "synchronizer", lambda device: (lambda: log.append("sync")))
    measure(lambda: log.append("fn"), warmup=1, repeats=2, device="cpu", clock=FakeClock(ticks_for([1, 2]), log))
    assert log == ["fn", "sync"] + ["sync", "clock", "fn", "sync", "clock"] * 2


@pytest.mark.gpu
@needs_cuda
def test_cuda_work_is_counted_not_just_launched():
    # torch.cuda._sleep spins the GPU for a number of cycles and returns to Python at once.
    spin = lambda: torch.cuda._sleep(50_000_000)  # tens of milliseconds on current GPUs  # noqa: E731
    spin()
    torch.cuda.synchronize()
    start = time.perf_counter()
    spin()
    launch_only = time.perf_counter() - start
    torch.cuda.synchronize()
    t = measure(spin, warmup=1, repeats=3, device="cuda")
    assert t.median_s > 5 * launch_only
    assert t.device_name == torch.cuda.get_device_name()


@pytest.mark.gpu
@needs_cuda
def test_stopwatch_waits_for_cuda_work():
    with Stopwatch("cuda") as sw:
        torch.cuda._sleep(50_000_000)
    assert sw.elapsed_s > 0.001


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0, device="cpu")
    with pytest.raises(ValueError, match="warmup"):
        measure(lambda: None, warmup=-1, device="cpu")
    with pytest.raises(ValueError, match="function"):
        measure(42, device="cpu")
    with pytest.raises(ValueError, match="Unknown device"):
        measure(lambda: None, device="tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is missing")
def test_asking_for_cuda_without_one_says_so():
    with pytest.raises(ValueError, match="no CUDA device"):
        measure(lambda: None, device="cuda")


# ---------------------------------------------------------------------------------------------
# Stopwatch


def test_stopwatch_laps_and_total():
    clock = FakeClock([10.0, 10.5, 10.75, 11.0])
    with Stopwatch("cpu", clock=clock) as sw:
        first = sw.lap()  # e.g. time to first token
        second = sw.lap()  # then one decode step
    assert (first, second) == (0.5, 0.25)
    assert sw.laps == [0.5, 0.25]
    assert sw.elapsed_s == pytest.approx(1.0)


def test_stopwatch_measures_real_time():
    with Stopwatch("cpu") as sw:
        time.sleep(0.010)
    assert 0.0099 <= sw.elapsed_s < 0.5


def test_lap_outside_a_block_is_an_error():
    with pytest.raises(ValueError, match="inside a running"):
        Stopwatch("cpu").lap()


# ---------------------------------------------------------------------------------------------
# Device names


def test_cpu_device_name_and_slug():
    name = device_name("cpu")
    assert name.startswith("cpu: ")
    threads = torch.get_num_threads()
    assert name.endswith(f"({threads} thread{'s' if threads != 1 else ''})")
    slug = device_slug("cpu")
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert slug.startswith("cpu-")


@needs_cuda
def test_cuda_device_name():
    assert device_name("cuda") == torch.cuda.get_device_name()
    assert re.fullmatch(r"cuda-[a-z0-9-]+", device_slug("cuda"))


# ---------------------------------------------------------------------------------------------
# Results on disk


def test_save_and_load_round_trip(tmp_path):
    target = tmp_path / "bench" / "my-device.json"
    t = Timing.from_samples([0.002, 0.003, 0.004], device_name=device_name("cpu"), warmup=2)
    written = save_results("kv_cache", {"decode": t, "tokens": 64}, device="cpu", path=target)
    assert written == target
    save_results("pricing", {"rows": [1, 2, 3]}, device="cpu", path=target)
    save_results("kv_cache", {"tokens": 128}, device="cpu", path=target)  # replaces only this section

    loaded = load_results(tmp_path / "bench")
    assert list(loaded) == ["my-device"]
    data = loaded["my-device"]
    assert data["device_name"] == device_name("cpu")
    assert set(data["sections"]) == {"kv_cache", "pricing"}
    kv = data["sections"]["kv_cache"]
    assert kv["results"] == {"tokens": 128}
    assert kv["device_name"] == device_name("cpu")
    assert kv["torch_version"] == torch.__version__
    assert dt.datetime.fromisoformat(kv["recorded_at"]).tzinfo is not None
    assert data["sections"]["pricing"]["results"] == {"rows": [1, 2, 3]}


def test_timing_survives_json(tmp_path):
    t = Timing.from_samples([0.5, 0.25], device_name="cpu: test", warmup=1)
    path = save_results("s", {"t": t}, device="cpu", path=tmp_path / "d.json")
    stored = json.loads(path.read_text())["sections"]["s"]["results"]["t"]
    assert Timing(**stored) == t


def test_default_file_is_named_after_the_device(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "BENCHMARKS_DIR", tmp_path)
    path = save_results("x", {"a": 1}, device="cpu")
    assert path == tmp_path / f"{device_slug('cpu')}.json"
    assert load_results(tmp_path)[device_slug("cpu")]["sections"]["x"]["results"] == {"a": 1}


def test_load_results_edge_cases(tmp_path):
    assert load_results(tmp_path / "no-such-folder") == {}
    (tmp_path / "broken.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        load_results(tmp_path)
    with pytest.raises(ValueError, match="section name"):
        save_results("", {}, device="cpu", path=tmp_path / "x.json")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        save_results("s", {"f": object()}, device="cpu", path=tmp_path / "x.json")
