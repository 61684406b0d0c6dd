"""`make check` (`python -m workbook.room_check`): is this laptop ready for the workshop? Minutes, not the full suite.

Every module is imported; then, for each lesson, the first things it does are done for real: load its model(s),
build its main widget, and send one prompt twice through the engine to see the second load its prefix from the
cache. Then a Jupyter kernel starts, and Chromium, where it is installed, opens a page headless. A progress line per step; the last line says
`ready`, or names each broken piece with its fix.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import sys
import time
from dataclasses import dataclass
from functools import cache
from typing import Callable

import workbook
from .errors import ModelNotInstalledError, WorkbookError

PROMPT = "The support bot answers questions about orders, refunds and gift cards. Where is my order?"
REBUILD = "rebuild the environment: rm -rf .venv && make setup"
RESTORE = ("restore the shipped files: git checkout -- data/ (or copy the workbook again); if you set WORKBOOK_MODEL or "
           "WORKBOOK_DRAFT_MODEL, check the checkpoint it names")
REAL_MODEL = "smollm2-135m-instruct"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass(frozen=True)
class Step:
    """One check: `run()` returns a short note on success and raises on failure."""

    name: str
    run: Callable[[], str]


@dataclass(frozen=True)
class Outcome:
    """How one step went, and what to do when it failed."""

    name: str
    seconds: float
    note: str = ""  # what a passing step found
    error: str = ""  # what broke, empty when the step passed
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def fix_for(exc: BaseException) -> str:
    """What to do about an exception a step raised: a missing package, a missing or broken file, or a bug."""
    if isinstance(exc, ImportError):
        return REBUILD
    if isinstance(exc, ModelNotInstalledError):
        return "run make setup: it installs the real model's file (98 MB, once)"
    if isinstance(exc, (WorkbookError, OSError)):  # a model, tokenizer, price sheet or data file unreadable
        return RESTORE
    return f"{REBUILD}; if it still fails, report this line to the facilitator"


@cache
def model(name: str):
    return workbook.load_model(name, device="cpu")


@cache
def tokenizer(name: str):
    return workbook.load_tokenizer(name)


def prefix_hit(name: str) -> str:
    """The same prompt twice through an engine with a prefix cache: the second loads rows and gets the same logits."""
    engine = workbook.Engine(model(name), tokenizer(name), workbook.PrefixCache(workbook.PagePool.for_tokens(1024, 16)))
    cold = engine.generate(PROMPT, max_new_tokens=2, stop_at_eos=False)
    hit = engine.generate(PROMPT, max_new_tokens=2, stop_at_eos=False)
    if cold.cached_tokens != 0 or hit.cached_tokens == 0 or hit.output_ids != cold.output_ids:
        raise AssertionError(f"{name}: no prefix hit (cached tokens {cold.cached_tokens} then {hit.cached_tokens}) "
                             "or a hit that changed the output")
    return f"{name}: {hit.cached_tokens} of {len(hit.prompt_ids)} prompt tokens loaded on the second request"


def lesson_01() -> str:
    from .widgets.tokens import DivergenceView

    name = workbook.default_model()
    DivergenceView(tokenizer(name), PROMPT, PROMPT.replace("order", "refund"))
    return prefix_hit(name)


def lesson_02() -> str:
    from .widgets.attention_grid import AttentionGrid

    name = workbook.default_model()
    AttentionGrid(model(name), tokenizer(name), max_tokens=8)
    return prefix_hit(name)


def lesson_03() -> str:
    from .widgets.decode_stepper import DecodeStepper

    name = workbook.default_model()
    DecodeStepper(model(name), tokenizer(name), max_steps=4)
    return prefix_hit(name)


def lesson_04() -> str:
    from .widgets.prefix_demo import PrefixCacheDemo

    name = workbook.default_model()
    PrefixCacheDemo(model(name), tokenizer(name), max_new_tokens=2)
    return prefix_hit(name)


def lesson_05() -> str:
    from .widgets.prompt_lab import PromptLabView

    name = workbook.default_model()
    PromptLabView(model(name), tokenizer(name))
    return prefix_hit(name)


def lesson_06() -> str:
    from .widgets.speculative_view import SpeculativeView

    name, draft = workbook.default_model(), workbook.default_draft_model()
    SpeculativeView(model(name), model(draft), tokenizer(name), PROMPT, k=2, max_new_tokens=4)
    return prefix_hit(draft) + "; " + prefix_hit(name)


def lesson_07() -> str:
    from .pricing import load_price_sheets
    from .widgets import CostCalculatorView

    CostCalculatorView(price_sheets=load_price_sheets())
    return prefix_hit(workbook.default_model())


def lesson_08() -> str:
    from .semantic import PairScores, load_embedder, load_pairs
    from .widgets import ThresholdView

    embedder, pairs = load_embedder(), load_pairs("tune")[:8]
    ThresholdView({"plain threshold": {"tune": PairScores(pairs, embedder, verify=None)}})
    return f"{embedder.name}: {embedder.dim}-dimensional vectors; " + prefix_hit(workbook.default_model())


def lesson_09() -> str:
    from .widgets import ServingTimelineView

    name = workbook.default_model()
    trace = [(0, tokenizer(name).encode(PROMPT), 2), (1, tokenizer(name).encode("Can I get a refund?"), 2)]
    ServingTimelineView(model(name), tokenizer(name), trace, max_running=2).run_to_end()
    return prefix_hit(name)


def lesson_10() -> str:
    from .widgets import AuditView

    name = workbook.default_model()
    AuditView(model(name), tokenizer(name), trials=2)
    return prefix_hit(name)


def lesson_11() -> str:
    from .doctor import diagnose
    from .doctor.report_html import findings_html
    from .paths import DATA_DIR

    report = diagnose(DATA_DIR / "examples" / "anthropic_log.jsonl", provider="anthropic/claude-sonnet-4-5")
    findings_html(report)
    return f"the doctor read {len(report.records)} requests of the example log (no model needed)"


def lesson_12() -> str:
    from .fleet.simulate import simulate, tokenized
    from .fleet.workload import workload
    from .paths import DATA_DIR

    recorded = len(list((DATA_DIR / "fleet").glob("*.json")))
    bursts = tokenized(workload("check", tenants=4, requests=16), tokenizer("tiny"))
    report = simulate(bursts, 4, "cache_aware")
    return (f"the fleet simulator routed {report.requests} requests over 4 replicas ({report.hit_rate:.0%} hit); "
            f"{recorded} recorded real runs")


def real_model() -> str:
    """Lessons 1, 4, 6 and 9 also show SmolLM2-135M-Instruct, which `make setup` installs beside the shipped models."""
    return prefix_hit(REAL_MODEL)


def import_everything() -> str:
    """Every module of the package (command-line entry points aside), and what the lessons run in."""
    names = [m.name for m in pkgutil.walk_packages(workbook.__path__, "workbook.") if not m.name.endswith("__main__")]
    for name in [*names, "ipykernel", "ipywidgets", "jupyterlab", "plotly"]:
        importlib.import_module(name)
    return f"{len(names)} workbook modules, JupyterLab, ipywidgets and plotly"


def kernel() -> str:
    """A Jupyter kernel starts, as JupyterLab would start one, and runs a line of the workbook."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.execute_interactive("import workbook", timeout=60, output_hook=lambda msg: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel could not import workbook: {reply['content'].get('evalue', '')}")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return f"python3 kernel ({sys.executable})"


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def chromium() -> str:
    """Chromium, only where it is installed (the browser tests use it; the lessons need any browser)."""
    path = find_chromium()
    if path is None:
        return "not installed: skipped (only the browser tests need it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_content("<p id='ok'>ready</p>")
            if page.inner_text("#ok") != "ready":
                raise RuntimeError("Chromium opened but drew nothing")
        finally:
            browser.close()
    return f"{path} opened a page headless"


LESSONS = [lesson_01, lesson_02, lesson_03, lesson_04, lesson_05, lesson_06, lesson_07, lesson_08, lesson_09,
           lesson_10, lesson_11, lesson_12]
STEPS = [Step("imports", import_everything), *(Step(f"lesson {f.__name__[-2:]}", f) for f in LESSONS),
         Step("real model", real_model), Step("kernel", kernel), Step("chromium", chromium)]
CHROMIUM_FIX = "install Chromium again (Debian: apt-get install -y chromium), or remove it: the lessons need any browser"


def run_step(step: Step) -> Outcome:
    start = time.perf_counter()
    try:
        note = step.run()
    except Exception as exc:  # every failure is reported, with its fix, and the next step still runs
        fix = CHROMIUM_FIX if step.name == "chromium" else fix_for(exc)
        return Outcome(step.name, time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}", fix=fix)
    return Outcome(step.name, time.perf_counter() - start, note=note)


def verdict(outcomes: list[Outcome]) -> str:
    """The last line: `ready`, or each failed step with its error's first line and its fix."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return "ready"
    return "not ready: " + "; ".join(f"{o.name} failed ({o.error.splitlines()[0]}) -> {o.fix}" for o in failed)


def check(steps: list[Step] = STEPS, out=print) -> list[Outcome]:
    """Run every step, printing a progress line each, then the verdict; the models load afresh."""
    model.cache_clear()
    tokenizer.cache_clear()
    start, outcomes = time.perf_counter(), []
    for i, step in enumerate(steps, 1):
        outcome = run_step(step)
        outcomes.append(outcome)
        status = "ok  " if outcome.ok else "FAIL"
        out(f"[{i:2}/{len(steps)}] {status} {step.name:<10} {outcome.seconds:5.1f} s  {outcome.note or outcome.error}")
    out(f"{len(steps)} steps in {time.perf_counter() - start:.0f} s")
    out(verdict(outcomes))
    return outcomes


def main() -> int:
    outcomes = check(out=lambda line: print(line, flush=True))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
