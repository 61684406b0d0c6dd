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
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import WorkbookError
from ..pricing import get_sheet
from .diagnosis import Costs, Diagnosis, Finding, Tokens, costs, replay
from .fixes import FIXES, Fix
from .logs import LogError, Record, read_log
from .stability import assert_prefix_stable

DEFAULT_TOKENIZER = "tiny"
SAVED_USD = 1e-9  # a fix must save more than this (float noise) to be kept in the fixes combined
WORTH = 0.001  # the share of the bill a fix must save to be recommended


@dataclass(frozen=True)
class FixResult:
    """One fix applied to the whole log: the hit rate and dollars it would give, and the share of prompt tokens the
    first provider's simulator reads from cache after it."""

    name: str
    does: str
    hit_rate: float
    cost_usd: dict[str, float]  # model key -> the log's total after the fix
    cached_share: float = 0.0


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
    def achieved_hit_rate(self) -> float:
        """Share of prompt tokens read from cache: as the log reports it where it does, else as the first provider's
        simulator bills the log."""
        if self.reported:
            pairs = [(r.reported_cached, r.reported_input) for r in self.records
                     if r.reported_cached is not None and r.reported_input]
            return sum(c for c, _ in pairs) / sum(n for _, n in pairs)
        return cached_share(self.now.bills[self.model_keys[0]])

    @property
    def achievable_hit_rate(self) -> float:
        """The same, simulated under the first provider's rules after the fixes that help (or as it is, if none do)."""
        return max([cached_share(self.now.bills[self.model_keys[0]])]
                   + [f.cached_share for f in self.fix_results if self.helps(f)])

    def reported_vs_simulated(self) -> list[tuple[int, int, int]]:
        """(line, cached tokens the provider reported, cached tokens the simulator bills) where the log has usage."""
        bills = self.now.bills[self.model_keys[0]]
        return [(r.line, r.reported_cached, b.usage.cache_read_tokens)
                for r, b in zip(self.records, bills) if r.reported_cached is not None]


def diagnose(log: str | Path | Iterable[dict | str] | Sequence[Record],
             provider: str | Sequence[str] = "anthropic/claude-sonnet-4-5", *, tokenizer=None) -> Report:
    """Diagnose a log (a path, request dicts, prompt strings or `Record`s) and price it at one or more providers."""
    records = list(log) if isinstance(log, (list, tuple)) and log and isinstance(log[0], Record) else read_log(log)
    named = [provider] if isinstance(provider, str) else list(provider)
    if not named:
        raise WorkbookError("Name at least one provider model, e.g. provider=\"anthropic/claude-sonnet-4-5\".")
    model_keys = [get_sheet(key).key for key in named]  # "provider/model", even from a bare model name
    tokens, name = _tokens(tokenizer)
    provider = model_keys[0].split("/")[0]
    diagnosis, now = replay(records, tokens, name, model_keys, provider=provider)
    return Report(records, diagnosis, now, fix_results(records, tokens, model_keys, name, provider, (diagnosis, now)))


def fix_results(records: Sequence[Record], tokens: Tokens, model_keys: Sequence[str], name: str, provider: str,
                as_is: tuple[Diagnosis, Costs] | None = None) -> list[FixResult]:
    """Each fix alone, then the fixes that lower the bill at the first provider together: taken in order, each kept
    if it lowers the bill of the log the fixes before it left (so two fixes that only help together are found).

    Each distinct log is diagnosed and billed once: a fix that changes nothing takes the log's own numbers (`as_is`,
    its diagnosis and costs, if the caller has them), and one that gives the log another fix gave takes that one's."""
    first = model_keys[0]
    records = list(records)
    done: list[tuple[list[Record], FixResult]] = []  # each log replayed so far, and what it gave

    def result(fix: str, does: str, log: list[Record], replayed: tuple[Diagnosis, Costs] | None = None) -> FixResult:
        known = next((r for seen, r in done if seen == log), None)
        if known is None:
            diagnosis, billed = replayed or replay(log, tokens, name, model_keys, explain=False, provider=provider)
            known = FixResult(fix, does, diagnosis.hit_rate, {key: billed.total(key) for key in model_keys},
                              cached_share(billed.bills[first]))
            done.append((log, known))
        return replace(known, name=fix, does=does)

    result("", "", records, as_is)
    results = [result(fix.name, fix.does, fix.apply(records)) for fix in FIXES]
    kept, fixed, cost, fixed_bills = [], records, done[0][1].cost_usd[first], None
    for fix in FIXES:
        tried = fix.apply(fixed)
        if tried == fixed:
            continue
        known = next((r for seen, r in done if seen == tried), None)
        tried_bills = None if known else costs(tried, tokens, [first])
        tried_cost = known.cost_usd[first] if known else tried_bills.total(first)
        if tried_cost < cost - SAVED_USD:
            kept, fixed, cost, fixed_bills = kept + [fix.name], tried, tried_cost, tried_bills
    if len(kept) > 1:
        does = "the fixes that lower the bill together, in order: " + ", ".join(kept)
        replayed = None
        if fixed_bills is not None:  # billed at the first provider already: the rest only
            diagnosis, others = replay(fixed, tokens, name, model_keys[1:], explain=False, provider=provider)
            replayed = diagnosis, Costs({**fixed_bills.bills, **others.bills})
        results.append(result("all", does, fixed, replayed))
    return results


def cached_share(bills) -> float:
    """Share of the billed prompt tokens read from cache."""
    read = sum(b.usage.cache_read_tokens for b in bills)
    total = sum(b.usage.input_tokens + b.usage.cache_write_tokens + b.usage.cache_read_tokens for b in bills)
    return read / total if total else 0.0


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
