"""Honest timers: warm-up runs, repeats, medians and spreads, and GPU work actually waited for.

A GPU call returns as soon as its kernels are queued, so timing it with a wall clock alone
measures the queueing, not the work. Every timer here synchronises the device before it
starts the clock and again before it stops it. On a CPU there is nothing to wait for and
the synchronisation is a no-op, so the same code runs everywhere.

Benchmark results are written to `data/benchmarks/<device-slug>.json` with the device name,
torch version and time, so notebooks can chart numbers measured on other machines too.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import json
import math
import os
import platform
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .checks import check_whole
from .errors import WorkbookError
from .paths import BENCHMARKS_DIR

Clock = Callable[[], float]

# ---------------------------------------------------------------------------------------------
# Devices


def _torch():
    """torch if it is installed, else None; imported only when a device question needs it."""
    try:
        import torch
    except ImportError:  # the timers still work on CPU without torch
        return None
    return torch


def resolve_device(device: Any = None) -> str:
    """Normalise a device to a string like "cpu", "cuda:0" or "mps".

    None and "auto" pick CUDA when it is available (the workbook's default device), else CPU.
    """
    torch = _torch()
    if device is None or device == "auto":
        if torch is not None and torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        return "cpu"
    name = str(device)
    if name == "cuda":
        if torch is None or not torch.cuda.is_available():
            raise WorkbookError("Asked to time on 'cuda' but no CUDA device is available. Use device='cpu' or 'auto'.")
        return f"cuda:{torch.cuda.current_device()}"
    if name.startswith("cuda:"):
        if torch is None or not torch.cuda.is_available():
            raise WorkbookError(f"Asked to time on {name!r} but no CUDA device is available. Use device='cpu' or 'auto'.")
        return name
    if name in ("cpu", "mps") or name.startswith("mps:"):
        return name
    raise WorkbookError(f"Unknown device {device!r}. Use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'.")


def cpu_model_name() -> str:
    """The processor's marketing name, e.g. "Intel(R) Xeon(R) Processor"."""
    # platform.processor() is often empty or just the architecture on Linux; /proc/cpuinfo has the marketing name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown processor"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_threads() -> int:
    torch = _torch()
    # torch's intra-op thread count is what a CPU benchmark actually uses.
    if torch is not None:
        return torch.get_num_threads()
    return os.cpu_count() or 1


def device_name(device: Any = None) -> str:
    """A human name for the device timings ran on, e.g. "cpu: Intel(R) Xeon(R) Processor (2 threads)"."""
    dev = resolve_device(device)
    if dev.startswith("cuda"):
        torch = _torch()
        return torch.cuda.get_device_name(torch.device(dev))
    if dev.startswith("mps"):
        return f"mps: {cpu_model_name()}"
    threads = _cpu_threads()
    return f"cpu: {cpu_model_name()} ({threads} thread{'s' * (threads != 1)})"


def device_slug(device: Any = None) -> str:
    """A filesystem-safe id of the device, used as the benchmark file name.

    The thread count is left out so results from one machine land in one file.
    """
    dev = resolve_device(device)
    if dev.startswith("cuda"):
        label = f"cuda {device_name(dev)}"
    else:
        label = f"{dev.split(':')[0]} {cpu_model_name()}"
    label = re.sub(r"\((r|tm)\)", "", label, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return slug or "unknown-device"


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits until all queued work on `device` has finished (no-op on CPU)."""
    if device.startswith("cuda"):
        torch = _torch()
        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    if device.startswith("mps"):
        torch = _torch()
        return torch.mps.synchronize
    return lambda: None


# ---------------------------------------------------------------------------------------------
# Statistics


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not samples:
        raise WorkbookError("No samples to take a percentile of. Run at least one repeat.")
    if not 0 <= q <= 100:
        raise WorkbookError(f"A percentile lies between 0 and 100, not {q}.")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass
class Timing:
    """Timed repeats of one function: every sample in seconds and the usual summaries."""

    samples_s: list[float]
    median_s: float
    p10_s: float
    p90_s: float
    min_s: float
    mean_s: float
    stdev_s: float
    device_name: str
    repeats: int
    warmup: int

    @classmethod
    def from_samples(cls, samples_s: list[float], *, device_name: str, warmup: int = 0) -> Timing:
        """Summarise raw samples (seconds)."""
        samples = [float(s) for s in samples_s]
        if not samples:
            raise WorkbookError("A Timing needs at least one sample.")
        return cls(
            samples_s=samples,
            median_s=statistics.median(samples),
            p10_s=percentile(samples, 10),
            p90_s=percentile(samples, 90),
            min_s=min(samples),
            mean_s=statistics.fmean(samples),
            stdev_s=statistics.stdev(samples) if len(samples) > 1 else 0.0,
            device_name=device_name,
            repeats=len(samples),
            warmup=warmup,
        )

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (what `save_results` stores)."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return (
            f"median {_fmt(self.median_s)} (p10 {_fmt(self.p10_s)}, p90 {_fmt(self.p90_s)}) "
            f"over {self.repeats} runs after {self.warmup} warm-up on {self.device_name}"
        )


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} µs"


# ---------------------------------------------------------------------------------------------
# Timers


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 10,
    device: Any = None,
    clock: Clock = time.perf_counter,
) -> Timing:
    """Call `fn()` `warmup` times untimed, then `repeats` times timed; return the summary.

    Warm-up absorbs one-off costs (lazy imports, allocator growth, kernel selection) that would
    otherwise land in the first sample. On CUDA the device is synchronised before and after each
    timed call, so the sample covers the GPU work, not just its launch. `device=None` means
    "auto" (CUDA if present); pass the device your tensors live on. `clock` is injectable so
    tests can drive it.
    """
    if not callable(fn):
        raise WorkbookError(f"measure() needs a function to call, got {type(fn).__name__}. Wrap work as `lambda: ...`.")
    check_whole("warmup", warmup, 0)
    check_whole("repeats", repeats, 1)
    dev = resolve_device(device)
    sync = synchronizer(dev)
    name = device_name(dev)

    for _ in range(warmup):
        fn()
    sync()

    samples: list[float] = []
    # Like timeit: a garbage collection landing inside one sample would be noise, not the work.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            sync()
            start = clock()
            fn()
            sync()
            samples.append(clock() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing.from_samples(samples, device_name=name, warmup=warmup)


class Stopwatch:
    """Times one phase (`with Stopwatch() as sw: ...`), synchronising the device at both ends.

    `lap()` returns the time since the previous lap (or the start) and keeps it in `laps`,
    which is how the engine records time-to-first-token and then each decode step.
    """

    def __init__(self, device: Any = None, *, clock: Clock = time.perf_counter):
        self.device = resolve_device(device)
        self._sync = synchronizer(self.device)
        self._clock = clock
        self._start: float | None = None
        self._last: float | None = None
        self.elapsed_s: float | None = None
        self.laps: list[float] = []

    def __enter__(self) -> Stopwatch:
        self._sync()
        self._start = self._last = self._clock()
        self.elapsed_s = None
        self.laps = []
        return self

    def lap(self) -> float:
        """Seconds since the last lap (or the start); the device is synchronised first."""
        if self._start is None or self.elapsed_s is not None:
            raise WorkbookError("lap() only works inside a running `with Stopwatch() as sw:` block.")
        self._sync()
        now = self._clock()
        split = now - self._last
        self._last = now
        self.laps.append(split)
        return split

    def __exit__(self, *exc_info) -> None:
        self._sync()
        self.elapsed_s = self._clock() - self._start


def forward_ms(model, prompt: list[int], n_tokens: int, repeats: int, batch: int = 1) -> float:
    """Median time of one forward pass of `model` over `n_tokens` new tokens after `prompt` (for each of `batch`
    copies), in ms. Each timed pass writes the same cache rows again: the cache is cropped back to the prompt."""
    torch = _torch()
    cache = model.new_cache(len(prompt) + n_tokens, batch_size=batch)
    model(torch.tensor([prompt] * batch, device=model.device), cache=cache)
    new = torch.tensor([prompt[-n_tokens:]] * batch, device=model.device)  # any ids will do; only the time counts

    def step():
        model(new, cache=cache)
        cache.crop(len(prompt))

    return measure(step, warmup=5, repeats=repeats, device=model.device).median_s * 1e3


# ---------------------------------------------------------------------------------------------
# Benchmark results on disk


def _torch_version() -> str:
    torch = _torch()
    return torch.__version__ if torch is not None else "not installed"


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and torch tensors
        return obj.tolist()
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_results(section: str, payload: dict, device: Any = None, path: str | Path | None = None) -> Path:
    """Store `payload` under `section` in the device's benchmark file; returns the file written.

    The file (`data/benchmarks/<device-slug>.json` unless `path` is given) keeps every section;
    saving a section again replaces only that section. Each section records the device name,
    torch and Python versions and when it was measured. `payload` may hold Timing objects.
    """
    if not isinstance(section, str) or not section.strip():
        raise WorkbookError("save_results needs a non-empty section name, e.g. 'kv_cache'.")
    if not isinstance(payload, dict):
        raise WorkbookError(f"save_results needs a dict payload, got {type(payload).__name__}.")
    dev = resolve_device(device)
    name = device_name(dev)
    path = BENCHMARKS_DIR / f"{device_slug(dev)}.json" if path is None else Path(path)

    data: dict = {}
    if path.exists():
        data = _read_json(path)
    data["device_name"] = name
    data["device_slug"] = device_slug(dev)
    sections = data.setdefault("sections", {})
    try:
        results = json.loads(json.dumps(payload, default=_jsonable))
    except (TypeError, ValueError) as exc:
        raise WorkbookError(f"The payload for section {section!r} cannot be stored as JSON: {exc}.") from None
    sections[section] = {
        "device_name": name,
        "torch_version": _torch_version(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "recorded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "results": results,
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file and rename, so an interrupted run never leaves half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WorkbookError(f"{path} is not valid JSON ({exc}). Fix or delete the file, then run the benchmark again.") from None
    if not isinstance(data, dict):
        raise WorkbookError(f"{path} should hold a JSON object, not {type(data).__name__}.")
    return data


def load_results(path: str | Path | None = None) -> dict[str, dict]:
    """Every benchmark file, as {device-slug: contents}.

    `path` may be a folder (default `data/benchmarks/`) or one JSON file. A missing folder
    gives {} so a fresh clone can still draw empty charts.
    """
    path = BENCHMARKS_DIR if path is None else Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.json"))
    elif path.suffix == ".json":
        raise WorkbookError(f"No benchmark file at {path}. Run a benchmark first, or pass an existing file or folder.")
    else:
        return {}
    return {f.stem: _read_json(f) for f in files}


__all__ = [
    "Stopwatch",
    "Timing",
    "device_name",
    "device_slug",
    "load_results",
    "measure",
    "percentile",
    "resolve_device",
    "save_results",
]
