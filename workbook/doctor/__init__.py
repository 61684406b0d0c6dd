"""The cache doctor: point it at your request log and see where cache hits break, why, what it costs, and what fixes it.

    from workbook.doctor import diagnose
    report = diagnose("data/examples/anthropic_log.jsonl", provider="anthropic/claude-sonnet-4-5")
    report.diagnosis.findings[3].cause, report.cost_now_usd, report.fix_results

`assert_prefix_stable` (`stability`) is the same idea as a test of your own prompt template; the
command `python -m workbook.doctor LOG` prints the report and writes it as HTML (`report_html`).
`diagnose` reads the log (`logs`), sorts its requests into call types, finds per request the earlier
request of its type it shares most with and why they part, in the text or outside it (an expired cache, another
model, another `prompt_cache_key`), with any breakpoint problems (`diagnosis`, `causes`), bills the log at each
provider (`workbook.providers`), and applies each fix (`fixes`) to the whole log to simulate what it saves; it
recommends only the fixes that lower the bill. Where the log reports usage, that is the achieved hit rate and the
yardstick of the token counts (`Report.calibration`). Token counts come from the workbook's
shipped tokenizer unless you pass another (any object with `encode` and `token_texts`), so they
approximate another provider's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from ..errors import WorkbookError
from ..pricing import get_sheet
from .diagnosis import Costs, Diagnosis, Finding, Tokens
from .fixes import FIXES, Fix, Fixed
from .logs import LogError, Record, Reread, is_file, iter_records, read_log
from .passes import FixResult, Forked, Replayer, cached_share, default_workers, numbers
from .stability import assert_prefix_stable

DEFAULT_TOKENIZER = "tiny"
SAVED_USD = 1e-9  # a fix must save more than this (float noise) to be kept in the fixes combined
WORTH = 0.001  # the share of the bill a fix must save to be recommended


@dataclass
class Report:
    """The doctor's findings on a log, as data: per request, totals, dollars now and after each fix."""

    records: list[Record]
    diagnosis: Diagnosis
    now: Costs
    fix_results: list[FixResult]

    @property
    def model_keys(self) -> list[str]:
        return list(self.now.bills)

    @property
    def cost_now_usd(self) -> dict[str, float]:
        return {key: self.now.total(key) for key in self.model_keys}

    @property
    def best_fix(self) -> FixResult:
        """The fix (or the helpful ones together) that costs least at the first provider."""
        return min(self.fix_results, key=lambda f: f.cost_usd[self.model_keys[0]])

    def helps(self, fix: FixResult) -> bool:
        """Whether a fix lowers the simulated bill at the first provider by at least `WORTH` of it: the doctor
        recommends no other."""
        key = self.model_keys[0]
        return fix.cost_usd[key] < self.cost_now_usd[key] * (1 - WORTH)

    @property
    def reported(self) -> bool:
        """Whether the log reports its usage (cached and total prompt tokens): then it, not a model, is the truth."""
        return any(r.reported_cached is not None and r.reported_input for r in self.records)

    @property
    def calibration(self) -> float | None:
        """Prompt tokens the log reports per token the doctor counts, over the requests that report them (None if
        none do): how far the counting tokenizer is from the provider's. Calibrated figures multiply by it."""
        pairs = [(r.reported_input, f.tokens) for r, f in zip(self.records, self.diagnosis.findings)
                 if r.reported_input and f.tokens]
        return sum(n for n, _ in pairs) / sum(t for _, t in pairs) if pairs else None

    @property
    def cached_share(self) -> float:
        """Share of prompt tokens the first provider's simulator reads from cache, the log as it is (a fix's is
        `FixResult.cached_share`)."""
        return cached_share(self.now.bills[self.model_keys[0]])

    @property
    def achieved_hit_rate(self) -> float:
        """Share of prompt tokens read from cache: as the log reports it where it does, else as the first provider's
        simulator bills the log."""
        if self.reported:
            pairs = [(r.reported_cached, r.reported_input) for r in self.records
                     if r.reported_cached is not None and r.reported_input]
            return sum(c for c, _ in pairs) / sum(n for _, n in pairs)
        return self.cached_share

    @property
    def achievable_hit_rate(self) -> float:
        """The same, simulated under the first provider's rules after the fixes that help (or as it is, if none do)."""
        return max([self.cached_share] + [f.cached_share for f in self.fix_results if self.helps(f)])

    def reported_vs_simulated(self) -> list[tuple[int, int, int]]:
        """(line, cached tokens the provider reported, cached tokens the simulator bills) where the log has usage."""
        bills = self.now.bills[self.model_keys[0]]
        return [(r.line, r.reported_cached, b.usage.cache_read_tokens)
                for r, b in zip(self.records, bills) if r.reported_cached is not None]


def diagnose(log: str | Path | Iterable[dict | str] | Sequence[Record],
             provider: str | Sequence[str] = "anthropic/claude-sonnet-4-5", *, tokenizer=None,
             workers: int | None = None, scheduler=None) -> Report:
    """Diagnose a log (a path, request dicts, prompt strings or `Record`s) and price it at one or more providers.

    A log file is streamed: one whose text passes `IN_MEMORY_CHARS` is read again for each pass (each fix is a pass)
    instead of being held, and its `Report.records` hold each request without its text (`parts=()`, `extra=()`).
    The fixed logs are billed in `workers - 1` processes forked from this one while it diagnoses the log as it is
    (`passes.Forked`; by default `workers` is two for a log held in memory on two cores or more, every core for a
    streamed one: `passes.default_workers`); the report is the same whatever the number.
    Given a Dask `scheduler` (a `distributed.Client`, or "synchronous"), every pass runs on it instead, sharded by
    call type (`sharded`): the same report again."""
    named = [provider] if isinstance(provider, str) else list(provider)
    if not named:
        raise WorkbookError("Name at least one provider model, e.g. provider=\"anthropic/claude-sonnet-4-5\".")
    model_keys = [get_sheet(key).key for key in named]  # "provider/model", even from a bare model name
    tokens, name = _tokens(tokenizer)
    records = held(log)
    provider = model_keys[0].split("/")[0]
    if scheduler is not None:
        from .sharded import Sharded

        return report(records, Sharded(tokens, name, provider, tokenizer, scheduler), model_keys)
    workers = default_workers(records) if workers is None else workers
    return report(records, Forked(tokens, name, provider, workers), model_keys)


def report(records: list[Record] | Reread, replayer: Replayer, model_keys: Sequence[str]) -> Report:
    """The report on a log held in a list or read again from its file, replayed by `replayer`."""
    kept: list[Record] = []
    as_is = cache(lambda: replayer.replay(_keeping(records, kept) if isinstance(records, Reread) else records,
                                          model_keys))
    try:
        fixes = fix_results(records, replayer, model_keys, as_is)
    finally:
        if isinstance(records, Reread):
            records.close()
    return Report(kept or records, *as_is(), fixes)


IN_MEMORY_CHARS = 100_000_000  # characters of request text held in memory; a bigger log file is read once per pass


def held(log) -> list[Record] | Reread:
    """The log's records in a list, or a `Reread` of its file when their text passes `IN_MEMORY_CHARS`."""
    if isinstance(log, (list, tuple)) and log and isinstance(log[0], Record):
        return list(log)
    if not is_file(log):
        return read_log(log)
    records, chars = [], 0
    for record in iter_records(log):
        chars += sum(len(part.text) for part in record.parts)
        if chars > IN_MEMORY_CHARS:
            return Reread(log)
        records.append(record)
    return records


def _keeping(records: Iterable[Record], kept: list[Record]) -> Iterator[Record]:
    """The records, each kept without its text as it passes."""
    for record in records:
        kept.append(replace(record, parts=(), extra=()))
        yield record


def fix_results(records: Iterable[Record], replayer: Replayer, model_keys: Sequence[str],
                as_is: Callable[[], tuple[Diagnosis, Costs]] | None = None) -> list[FixResult]:
    """Each fix alone, then the fixes that lower the bill at the first provider together: taken in order, each kept
    if it lowers the bill of the log the fixes before it left (so two fixes that only help together are found).

    A fixed log is billed, not diagnosed: what a fix gives is what the provider would charge and read from cache.
    `records` may be read many times (a list, or a `Reread`); a fixed log is a `Fixed`. Each distinct log is
    billed once (`log_keys` tells them apart): a fix that changes nothing takes the log's own numbers (`as_is()`,
    its diagnosis and costs, if the caller has them; it runs while the replayer's workers bill the fixes), and one
    that gives the log another fix gave takes that one's."""
    first = model_keys[0]
    singles = [Fixed(records, [fix]) for fix in FIXES]
    base, *keys = log_keys(records, singles)
    todo = []  # the distinct fixed logs to replay, by position in `singles`
    for k, key in enumerate(keys):
        if key != base and all(key != keys[j] for j in todo):
            todo.append(k)
    with replayer.start([singles[k] for k in todo], model_keys) as pending:
        known = [(base, numbers(as_is()[1] if as_is else replayer.costs(records, model_keys), model_keys))]
        known += [(keys[k], result) for k, result in zip(todo, pending.results())]  # (log or digest, what it gave)
    lookup = lambda key: next((result for seen, result in known if seen == key), None)  # noqa: E731
    results = [replace(lookup(key), name=fix.name, does=fix.does) for key, fix in zip(keys, FIXES)]
    kept, fixed, current, cost, fixed_bills = [], Fixed(records), base, known[0][1].cost_usd[first], None
    upcoming: dict[str, int] = {}  # a streamed log: each fix still to try on the kept ones, digested in one reading
    for k, (single, fix) in enumerate(zip(singles, FIXES)):
        if not kept:  # each fix alone: its log and key are known already
            tried, key = single, keys[k]
        elif fixed.in_memory:
            tried = Fixed(fixed, [fix])
            key = tried.held()
        else:
            tried = Fixed(fixed, [fix])
            upcoming = upcoming or dict(zip([f.name for f in FIXES[k:]], log_digests(fixed, [[f] for f in FIXES[k:]])))
            key = upcoming[fix.name]
        if key == current:
            continue
        found = lookup(key)
        tried_bills = None if found else replayer.costs(tried, [first])
        tried_cost = found.cost_usd[first] if found else tried_bills.total(first)
        if tried_cost < cost - SAVED_USD:
            kept, fixed, current, cost, fixed_bills = kept + [fix.name], tried, key, tried_cost, tried_bills
            upcoming = {}
    if len(kept) > 1:
        does = "the fixes that lower the bill together, in order: " + ", ".join(kept)
        found = lookup(current)
        if found is None and fixed_bills is not None:  # billed at the first provider already: the rest only
            others = replayer.costs(fixed, model_keys[1:]) if model_keys[1:] else Costs()
            found = numbers(Costs({**fixed_bills.bills, **others.bills}), model_keys)
        elif found is None:
            found = numbers(replayer.costs(fixed, model_keys), model_keys)
        results.append(replace(found, name="all", does=does))
    return results


def log_keys(records: list[Record] | Reread, logs: Sequence[Fixed]) -> list:
    """What tells the log and each fixed log apart: each log itself when held in memory (compared record by record;
    the records a fix leaves alone are the same objects), else a digest of its records, all rewritten in one reading
    of the file."""
    if isinstance(records, list):
        return [records] + [log.held() for log in logs]
    return log_digests(records, [[]] + [list(log.fixes) for log in logs])


def log_digests(records: Iterable[Record], chains: Sequence[Sequence[Fix]]) -> list[int]:
    """A digest of each fixed log (the log with a chain of fixes applied), all rewritten in one reading of the log:
    two logs with one digest hold the same records."""
    rewrites = [[fix.start(Fixed(records, chain[:k])) for k, fix in enumerate(chain)] for chain in chains]
    digests = [0] * len(chains)
    for record in records:
        plain = _hash(record)
        for c, chain in enumerate(rewrites):
            fixed = record
            for rewrite in chain:
                fixed = rewrite(fixed)
            digests[c] = hash((digests[c], plain if fixed is record else _hash(fixed)))
    return digests


def _hash(record: Record) -> int:
    try:
        return hash(record)
    except TypeError:  # a field logged as a JSON object (a prompt_cache_key that is not a string, say)
        return hash(repr(record))


TIKTOKEN_ENCODINGS = ("o200k_base", "cl100k_base")  # OpenAI's: with the `doctor` extra, counts closer to OpenAI's


def _tokens(tokenizer) -> tuple[Tokens, str]:
    """The tokenizer to count with (a workbook model's name, a tiktoken encoding, or any tokenizer object), and its
    name for the report."""
    if tokenizer in TIKTOKEN_ENCODINGS:
        return Tokens(TiktokenAdapter(tokenizer)), f"tiktoken {tokenizer}"
    if tokenizer is None or isinstance(tokenizer, str):
        from ..tokenizer import load_tokenizer

        name = tokenizer or DEFAULT_TOKENIZER
        return Tokens(load_tokenizer(name)), name
    return Tokens(tokenizer), type(tokenizer).__name__


class TiktokenAdapter:
    """A tiktoken encoding with the two methods the doctor uses. tiktoken downloads an encoding's file the first time
    it is used; after that it reads it from its cache, offline."""

    def __init__(self, name: str):
        try:
            import tiktoken
        except ImportError:
            raise WorkbookError(f"Counting with {name} needs tiktoken: pip install -e '.[doctor]'.") from None
        self.encoding = tiktoken.get_encoding(name)

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, disallowed_special=())

    def token_texts(self, ids) -> list[str]:
        return [self.encoding.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in ids]


__all__ = ["DEFAULT_TOKENIZER", "Diagnosis", "Finding", "Fix", "FixResult", "LogError", "Record", "Report",
           "assert_prefix_stable", "diagnose", "read_log"]
