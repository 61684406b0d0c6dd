"""The doctor on Dask, for logs that outgrow one machine: the same per-stream diagnosis, sharded by call type.

Each request is diagnosed against earlier requests of its own call type only (`diagnosis.Streams`), and each model
the log names has a cache of its own (`diagnosis.Biller`). So once every request knows its call type (one cheap
pass in order, `stream_numbers`: no tokenizing), a pass splits into independent tasks: one per call type, which
diagnoses its requests in order (`diagnose_stream`), and one per provider model and logged model, which bills them
(`bill_model`). Each task tokenizes what it reads with its worker's own `Tokens`. The findings and bills come back
in log order, so the report is the one `diagnose` gives in one process, byte for byte (`tests/test_doctor_sharded.py`).

    from dask.distributed import Client
    report = diagnose("big_log.jsonl.gz", provider="openai/gpt-5.5", scheduler=Client("tcp://scheduler:8786"))

The process that calls `diagnose` reads the log once per pass, as `diagnose` does, and sends each task its
requests; the tokenizing, diagnosing and billing run on the cluster. Dask is an optional extra:
`pip install -e ".[scale]"`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Iterable, Sequence

from ..errors import WorkbookError
from .diagnosis import Biller, Costs, Diagnosis, Stream, Streams, Tokens, finding, provider_of
from .logs import Record
from .passes import Replayer


def stream_numbers(records: Iterable[Record]) -> list[int]:
    """Each record's call type, numbered as `diagnosis.replay` numbers them."""
    streams = Streams()
    return [streams.of(record).number for record in records]


@lru_cache(maxsize=None)
def worker_tokens(tokenizer) -> tuple[Tokens, str]:
    """A worker's counting tokenizer (see `workbook.doctor._tokens`), made once per process and kept."""
    from . import _tokens

    return _tokens(tokenizer)


def diagnose_stream(number: int, items: list[tuple[int, Record]], tokenizer, provider: str,
                    explain: bool) -> list[tuple]:
    """(position in the log, `Finding`) for each request of one call type, given in log order."""
    tokens, _ = worker_tokens(tokenizer)
    stream = Stream(number, {})
    return [(i, finding(r, tokens.of(r.parts), stream, tokens, provider_of(r, provider), explain)) for i, r in items]


def bill_model(model_key: str, items: list[tuple[int, Record]], tokenizer) -> list[tuple]:
    """(position in the log, `Bill`) for each request sent to one model, billed at `model_key` in log order."""
    tokens, _ = worker_tokens(tokenizer)
    biller = Biller(model_key)
    for i, record in items:
        biller.send(i, record, tokens.of(record.parts))
    return [(i, bill) for (i, _), bill in zip(items, biller.bills)]


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

    def replay(self, log: Iterable[Record], model_keys: Sequence[str], explain: bool = True) -> tuple[Diagnosis, Costs]:
        return self._run(log, model_keys, explain, diagnose=True)

    def costs(self, log: Iterable[Record], model_keys: Sequence[str]) -> Costs:
        return self._run(log, model_keys, False, diagnose=False)[1]

    def _run(self, log: Iterable[Record], model_keys: Sequence[str], explain: bool, diagnose: bool):
        import dask

        by_stream, by_model, n = defaultdict(list), defaultdict(list), 0
        streams = Streams()
        for n, record in enumerate(log, start=1):
            if diagnose:
                by_stream[streams.of(record).number].append((n - 1, record))
            by_model[record.model].append((n - 1, record))
        tasks = [dask.delayed(diagnose_stream)(number, items, self.tokenizer, self.provider, explain)
                 for number, items in by_stream.items()]
        tasks += [dask.delayed(bill_model)(key, items, self.tokenizer) for key in model_keys for items in by_model.values()]
        done = dask.compute(*tasks, scheduler=self.scheduler)
        findings, bills = [None] * n, {key: [None] * n for key in model_keys}
        for shard in done[:len(by_stream)]:
            for i, found in shard:
                findings[i] = found
        for k, shard in enumerate(done[len(by_stream):]):
            for i, bill in shard:
                bills[model_keys[k // len(by_model)]][i] = bill
        return Diagnosis(findings, self.tokenizer_name), Costs(bills)
