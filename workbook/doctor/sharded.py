"""The doctor on Dask, for logs that outgrow one machine: the same per-stream diagnosis, sharded by call type.

Each request is diagnosed against earlier requests of its own call type only (`diagnosis.Streams`), and each model
the log names has a cache of its own (`diagnosis.Biller`). So a pass splits into independent tasks: one per call
type, which diagnoses its requests in order (`diagnose_stream`), and one per provider model and logged model, which
bills them (`bill_model`). The calling process reads the log `CHUNK` requests at a time, gives each request its
call type (`diagnosis.Streams`: no tokenizing), and sends each call type's and each model's requests of the chunk
to the cluster with the state the earlier chunks left (the stream's recent requests, the model's cache), which
comes back with the findings and bills: it never holds more of the log than a chunk, and the tokenizing,
diagnosing and billing run on the workers, each with its own `Tokens` (a model's `Biller` carries its tokenizer
there, with its cache). The findings and bills are put back in log
order, so the report is the one `diagnose` gives in one process, byte for byte (`tests/test_doctor_sharded.py`).

    from dask.distributed import Client
    report = diagnose("big_log.jsonl.gz", provider="openai/gpt-5.5", scheduler=Client("tcp://scheduler:8786"))

Dask is an optional extra: `pip install -e ".[scale]"`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

from ..errors import WorkbookError
from .diagnosis import Biller, Costs, Diagnosis, Stream, Streams, Tokens, finding, provider_of
from .logs import Record
from .passes import Replayer


@lru_cache(maxsize=None)
def worker_tokens(tokenizer) -> tuple[Tokens, str]:
    """A worker's counting tokenizer (see `workbook.doctor._tokens`), made once per process and kept."""
    from . import _tokens

    return _tokens(tokenizer)


def diagnose_stream(stream: Stream, items: list[tuple[int, Record]], tokenizer,
                    provider: str) -> tuple[Stream, list[tuple]]:
    """Requests of one call type, given in log order after those `stream` has seen: (the stream as they leave it,
    [(position in the log, `Finding`)])."""
    tokens, _ = worker_tokens(tokenizer)
    found = [(i, finding(r, tokens.of(r.parts), stream, tokens, provider_of(r, provider))) for i, r in items]
    return stream, found


def bill_model(biller: Biller, items: list[tuple[int, Record]]) -> tuple[Biller, list[tuple]]:
    """Requests sent to one model, in log order after those `biller` has billed: (the biller as they leave it, its
    cache included, [(position in the log, `Bill`)])."""
    biller.bills = []
    for i, record in items:
        biller.send(i, record)
    return biller, [(i, bill) for (i, _), bill in zip(items, biller.bills)]


class Sharded(Replayer):
    """A `Replayer` whose passes run as Dask tasks on `scheduler` (a `distributed.Client`, or a scheduler name that
    `dask.compute` takes, such as "synchronous"). `tokenizer` is what `diagnose` was given (None, or a name): each
    worker loads it itself."""

    def __init__(self, tokens: Tokens, tokenizer_name: str, provider: str, tokenizer, scheduler):
        super().__init__(tokens, tokenizer_name, provider)
        if tokenizer is not None and not isinstance(tokenizer, str):
            raise WorkbookError("On Dask, name the tokenizer (tokenizer=\"tiny\", \"o200k_base\", a checkpoint "
                                "folder): each worker loads it by name.")
        self.tokenizer, self.scheduler = tokenizer, scheduler

    def replay(self, log: Iterable[Record], model_keys: Sequence[str]) -> tuple[Diagnosis, Costs]:
        return self._run(log, model_keys, diagnose=True)

    def costs(self, log: Iterable[Record], model_keys: Sequence[str]) -> Costs:
        return self._run(log, model_keys, diagnose=False)[1]

    def _run(self, log: Iterable[Record], model_keys: Sequence[str], diagnose: bool):
        """The log read `CHUNK` requests at a time; each chunk's call types and models go to the cluster with the
        state the chunks before left them in (a stream's recent requests, a model's cache), which comes back."""
        import dask

        streams, states, billers = Streams(), {}, {}
        findings, bills = [], {key: [] for key in model_keys}
        for chunk in batched(enumerate(log), CHUNK):
            by_stream, by_model = defaultdict(list), defaultdict(list)
            for i, record in chunk:
                if diagnose:
                    by_stream[streams.of(record).number].append((i, record))
                by_model[record.model].append((i, record))
            shards = [(n, items) for n, items in by_stream.items()]
            sends = [(key, model, items) for key in model_keys for model, items in by_model.items()]
            done = dask.compute(*(
                [dask.delayed(diagnose_stream)(states.pop(n, None) or Stream(n, {}), items, self.tokenizer, self.provider)
                 for n, items in shards]
                + [dask.delayed(bill_model)(billers.pop((key, model), None) or Biller(key, self.tokens), items)
                   for key, model, items in sends]), scheduler=self.scheduler)
            placed = dict.fromkeys(i for i, _ in chunk)
            for (n, _), (state, found) in zip(shards, done[:len(shards)]):
                states[n] = state
                placed.update(found)
            findings += placed.values() if diagnose else []
            billed_at: dict[str, dict] = {key: {} for key in model_keys}
            for (key, model, _), (biller, billed) in zip(sends, done[len(shards):]):
                billers[key, model] = biller
                billed_at[key].update(billed)
            for key in model_keys:
                bills[key] += [billed_at[key][i] for i, _ in chunk]
            for n in [n for n in states if n not in streams.kept]:  # a call type forgotten gets no more requests
                del states[n]
        return Diagnosis(findings, self.tokenizer_name), Costs(bills)


CHUNK = 5_000  # requests read before a round of tasks: what the calling process holds of the log at once


def batched(items: Iterable, n: int) -> Iterable[list]:
    """Lists of `n` items (the last one shorter) as they are read."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
