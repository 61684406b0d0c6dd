"""Lesson 11's "check yourself" exercises (the cache doctor): each compares an answer with what the doctor computes on
the example logs and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is None.
"""

from __future__ import annotations

from ..doctor import Report, diagnose
from ..doctor.causes import ALL_CAUSES as CAUSES
from ..doctor.stability import prefix_divergence
from ..paths import DATA_DIR
from .verdict import CheckResult, check_letters, check_number, judge

EXAMPLES = DATA_DIR / "examples"
OPENAI_LOG, ANTHROPIC_LOG = EXAMPLES / "openai_log.jsonl", EXAMPLES / "anthropic_log.jsonl"
PROMPTS_LOG = EXAMPLES / "prompts.json"
SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"
# Exercise 2: the request whose lost tokens the learner works out. Not in the Anthropic log: the lesson's table shows
# every one of its requests' lost tokens, and the lesson works out its request 2 in full.
LOST_LOG, LOST_LINE = PROMPTS_LOG, 3

# Exercise 3: four templates of one support prompt; `vary` changes the date and the question.
POLICY = "You are the support assistant of Harbor & Pine.\nReturns are accepted within 30 days."
VARY = {"date": ["15 March 2026", "16 March 2026"], "question": ["Where is my order?", "Can I return boots I wore?"]}
TEMPLATES = {
    "a": ("f'Today is {date}.\\n{POLICY}\\nUser: {question}'",
          lambda date, question: f"Today is {date}.\n{POLICY}\nUser: {question}"),
    "b": ("f'{POLICY}\\nToday is {date}.\\nUser: {question}'",
          lambda date, question: f"{POLICY}\nToday is {date}.\nUser: {question}"),
    "c": ("f'{POLICY}\\nToday is {date}. User: {question}'",
          lambda date, question: f"{POLICY}\nToday is {date}. User: {question}"),
    "d": ("f'{POLICY}\\nAnswer in at most {3 * len(question.split())} words.\\nToday is {date}. User: {question}'",
          lambda date, question: f"{POLICY}\nAnswer in at most {3 * len(question.split())} words.\n"
                                 f"Today is {date}. User: {question}"),
}


def check_costliest_cause(answer, report: Report | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: in the OpenAI example log, which cause loses the most tokens? Answer its name, e.g. "whitespace"."""
    if answer is not None and answer not in CAUSES:
        return CheckResult(False, f"{answer!r} is not a cause the doctor names; choose from {', '.join(CAUSES)}.")
    report = diagnose(OPENAI_LOG, provider=GPT) if report is None else report
    lost = report.diagnosis.lost_by_cause()
    truth = max(lost, key=lost.get)
    why = (f"{truth!r} loses {lost[truth]:,} tokens over {report.diagnosis.causes[truth]} requests: "
           f"{CAUSES[truth]} This log's findings table (findings_html of its report) shows which line of the app "
           "writes it.")
    return judge("check_costliest_cause", None if answer is None else answer == truth,
                 how=f"Set the answer to a cause's name, one of: {', '.join(CAUSES)}.", worked=why,
                 said="" if answer is None else f"{answer!r} loses {lost.get(answer, 0):,} tokens. ",
                 hint="Count lost tokens, not broken requests: one break early in a long prompt can lose more than "
                      "many late ones. Add them up per cause, as section 4 does for the Anthropic log.", reveal=reveal)


def check_lost_tokens(answer, report: Report | None = None, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: how many tokens does request LOST_LINE of the rendered-prompt example log lose to its cause?"""
    report = diagnose(LOST_LOG, provider=GPT) if report is None else report
    by_line = {f.line: f for f in report.diagnosis.findings}
    f = by_line[LOST_LINE]
    earlier = by_line[f.match_line]
    truth = f.lost_tokens
    return check_number(
        answer, truth, exercise="check_lost_tokens", how="Replace None with a number of tokens.", unit="tokens",
        reveal=reveal,
        why=(f"{truth:,}: both static regions would have been shared if they were byte-stable, so the lost tokens are "
             f"the shorter static region, min({f.static_tokens:,}, {earlier.static_tokens:,}), minus the "
             f"{f.shared_tokens:,} tokens that were shared anyway."),
        hint=("Only the static region (everything before the last message; in a rendered prompt, before the last "
              "line) can be lost, and only as far as the earlier request's static region reaches; the shared tokens "
              "were not lost."))


def check_stable_templates(answer, tokenizer=None, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: which of TEMPLATES pass `assert_prefix_stable(render, VARY)` with the default static prefix?"""
    stable = {letter: prefix_divergence(render, VARY, tokenizer=tokenizer) is None
              for letter, (_, render) in TEMPLATES.items()}
    options = {letter: (text, stable[letter], _why(text, stable[letter])) for letter, (text, _) in TEMPLATES.items()}
    return check_letters(answer, options, exercise="check_stable_templates",
                         how='Set the answer to a set of letters, e.g. {"a", "d"}.',
                         yes="passes", no="fails", right="The static prefix is everything before the last line:",
                         hint="The default static prefix is everything before the last line. For each template, ask "
                              "whether any text before the last line changes with the date or the question.",
                         reveal=reveal)


def _why(template: str, stable: bool) -> str:
    if stable:
        return "the date and the question are both on the last line, after the static prefix"
    if template.startswith("f'Today"):
        return "the date opens the prompt, so nothing after it can be shared"
    if "words" in template:
        return "the word limit is computed from the question, so a line of the static prefix changes with it"
    return "the date has its own line before the last one: it sits inside the static prefix"
