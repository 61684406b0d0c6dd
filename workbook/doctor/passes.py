"""Replaying logs for the report: the log as it is, diagnosed and billed, and each fixed log, billed, here or in workers.

A `Replayer` replays one log after another in this process (`diagnosis.replay`; a fixed log is only billed,
`diagnosis.costs`). `Forked` bills the fixed logs the doctor prices (each fix alone) in worker processes started by
fork: they inherit the log, the tokenizer and its caches without a copy, bill while this process diagnoses the log
as it is, and each sends back a few numbers (`FixResult`). Where fork is missing (Windows) `Forked` bills here.
`sharded.Sharded` replays on Dask instead.
"""

from __future__ import annotations

import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..timing import usable_cores
from .diagnosis import Costs, Diagnosis, Tokens, costs, replay
from .logs import Record

@dataclass(frozen=True)
class FixResult:
    """One fix applied to the whole log, as the provider simulators bill it: the dollars it would cost, and the share
    of prompt tokens the first provider reads from cache."""

    name: str
    does: str
    cost_usd: dict[str, float]  # model key -> the log's total after the fix
    cached_share: float


def cached_share(bills) -> float:
    """Share of the billed prompt tokens read from cache."""
    read = sum(b.usage.cache_read_tokens for b in bills)
    total = sum(b.usage.input_tokens + b.usage.cache_write_tokens + b.usage.cache_read_tokens for b in bills)
    return read / total if total else 0.0


def numbers(billed: Costs, model_keys: Sequence[str]) -> FixResult:
    """What a billed log gave, as a fix's result (named by the caller)."""
    return FixResult("", "", {key: billed.total(key) for key in model_keys}, cached_share(billed.bills[model_keys[0]]))


class Replayer:
    """Replays logs in this process: `tokens` counts, `provider` decides the lifetimes of records that do not say
    whose they are."""

    def __init__(self, tokens: Tokens, tokenizer_name: str, provider: str):
        self.tokens, self.tokenizer_name, self.provider = tokens, tokenizer_name, provider

    def replay(self, log: Iterable[Record], model_keys: Sequence[str]) -> tuple[Diagnosis, Costs]:
        return replay(log, self.tokens, self.tokenizer_name, model_keys, provider=self.provider)

    def costs(self, log: Iterable[Record], model_keys: Sequence[str]) -> Costs:
        return costs(log, self.tokens, model_keys)

    def start(self, logs: Sequence[Iterable[Record]], model_keys: Sequence[str]) -> Pending:
        """Begin billing each of `logs`; `Pending.results` gives each one's numbers."""
        return Pending(lambda: [numbers(self.costs(log, model_keys), model_keys) for log in logs])


class Pending:
    """Replays under way: `results()` waits for them; leaving a `with` block stops any left (on an error)."""

    def __init__(self, finish, stop=lambda: None):
        self.finish, self.stop = finish, stop

    def results(self) -> list[FixResult]:
        return self.finish()

    def __enter__(self) -> Pending:
        return self

    def __exit__(self, *error) -> None:
        self.stop()


class Forked(Replayer):
    """A `Replayer` whose `start` bills the logs in `workers - 1` forked processes, while this one goes on (it
    diagnoses the log as it is): `workers` processes in all."""

    def __init__(self, tokens: Tokens, tokenizer_name: str, provider: str, workers: int):
        super().__init__(tokens, tokenizer_name, provider)
        self.workers = workers

    def start(self, logs: Sequence[Iterable[Record]], model_keys: Sequence[str]) -> Pending:
        if self.workers < 2 or not logs or "fork" not in multiprocessing.get_all_start_methods():
            return super().start(logs, model_keys)
        global _FORKED
        _FORKED = (self, list(logs), list(model_keys))  # what each worker inherits when it is forked
        gc.freeze()  # the workers' garbage collector leaves the inherited objects alone, so their pages stay shared
        pool = ProcessPoolExecutor(min(self.workers - 1, len(logs)), mp_context=multiprocessing.get_context("fork"))
        futures = [pool.submit(_bill_one, k) for k in range(len(logs))]

        def stop() -> None:
            global _FORKED
            pool.shutdown(cancel_futures=True)
            gc.unfreeze()
            _FORKED = None

        def finish() -> list[FixResult]:
            try:
                return [future.result() for future in futures]
            finally:
                stop()

        return Pending(finish, stop)


_FORKED: tuple | None = None  # (replayer, logs, model keys), set in the parent just before its workers fork


def _bill_one(k: int) -> FixResult:
    """In a worker: bill the `k`-th log it inherited."""
    replayer, logs, model_keys = _FORKED
    return numbers(replayer.costs(logs[k], model_keys), model_keys)


HELD_WORKERS = 2  # processes for a log held in memory: the doctor and one forked worker


def default_workers(log: Iterable[Record]) -> int:
    """Processes in all: every core for a log read from its file again per pass (each worker reads it itself and
    holds little), at most `HELD_WORKERS` for one held in memory. A worker billing a held log copies the memory pages
    of every record it reads (Python counts references in the objects themselves): on the 50 MB benchmark log
    (2-core Xeon, idle) the doctor alone took 7.4 s and 177 MB, with one worker 5.9 s and 263 MB (PSS, together),
    and two workers would pass the 300 MB the doctor is allowed."""
    cores = usable_cores()
    return cores if not isinstance(log, (list, tuple)) else min(cores, HELD_WORKERS)
