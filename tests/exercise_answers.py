"""No exercise is answered before it is asked: each numeric exercise's worked answer, looked for in the outputs of the
cells before its check cell.

After a lesson has run, `probe_code` is run in the same kernel. It calls every check cell's `check_*` function again
with the answer replaced by None and `reveal=True` (which counts no try), and records the number the check compares
answers with (`expected`, as `check_number` and `check_amount` receive it). `answered_before` then reads every number
printed by the earlier cells and reports each one equal to an exercise's answer: an integer equal to it, or a decimal
that is the answer rounded to as many places as it shows.

Answers that are letters (multiple choice) are not numbers a cell prints, and are not looked for. Whole-number answers
below MIN_WHOLE are not looked for either: a lesson prints small counts everywhere (merges, milliseconds, probes), and
every such match found when this test was written was a coincidence. Nor are measurements: a number printed with a
unit of time or speed (ms, s, tokens/s, a 1.5x ratio) comes out different on every run and machine, so it matches an
answer only by chance (a run once measured 192 tokens/s, and lesson 9's answer is 192 KiB).
"""

from __future__ import annotations

import ast
import json
import math
import re

import nbformat

CHECK_CALL = re.compile(r"^(\w+\.)?check_\w+\(", re.M)
MIN_WHOLE = 100
NUMBER = re.compile(r"(?<![\w.,])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|(?<![\w.,])-?\d+(?:\.\d+)?(?![\d])")
TAG = re.compile(r"<[^>]+>")
MEASURED = re.compile(r"\s*(?:[mµun]?s|tokens?/s|/s|x)\b")  # right after a number: a time, a speed or a ratio


def check_calls(notebook: nbformat.NotebookNode) -> dict[int, str]:
    """{code cell index: the check call with the learner's answer replaced by None and reveal=True}."""
    calls = {}
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for index, cell in enumerate(code):
        if not CHECK_CALL.search(cell.source):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and _name(node.func).startswith("check_"):
                calls[index] = ast.unparse(_unanswered(node))
    return calls


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _unanswered(call: ast.Call) -> ast.Call:
    """The call with its `answer_*` argument (positional, or answer=) as None, and reveal=True."""
    def blank(arg: ast.expr) -> ast.expr:
        return ast.Constant(None) if isinstance(arg, ast.Name) and arg.id.startswith("answer") else arg

    keywords = [ast.keyword(k.arg, blank(k.value)) for k in call.keywords if k.arg != "reveal"]
    return ast.Call(call.func, [blank(a) for a in call.args], [*keywords, ast.keyword("reveal", ast.Constant(True))])


def probe_code(notebook: nbformat.NotebookNode) -> str:
    """Code to run in the lesson's kernel after the lesson: it prints one line of JSON, {cell index: [expected, ...]}."""
    return f"""
import importlib as _importlib, json as _json
import workbook.exercises.verdict as _verdict
_expected, _patched = [], []
def _recording(original):
    def check(answer, expected, *args, **kwargs):
        _expected.append(expected)
        return original(answer, expected, *args, **kwargs)
    return check
for _n in range(1, 100):
    try:
        _module = _importlib.import_module(f"workbook.exercises.lesson{{_n}}")
    except ModuleNotFoundError:
        break
    for _name in ("check_number", "check_amount"):
        if getattr(_module, _name, None) is getattr(_verdict, _name):
            _patched.append((_module, _name))
            setattr(_module, _name, _recording(getattr(_verdict, _name)))
_found = {{}}
try:
    for _cell, _call in {check_calls(notebook)!r}.items():
        _expected.clear()
        eval(_call)
        _found[_cell] = [float(e) for e in _expected]
finally:
    for _module, _name in _patched:
        setattr(_module, _name, getattr(_verdict, _name))
print(_json.dumps(_found))
"""


def printed(cell: nbformat.NotebookNode) -> str:
    """Everything a cell showed as text: streams, plain text and HTML (tags removed)."""
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/plain", ""))
        parts.append(TAG.sub(" ", data.get("text/html", "")))
    return "\n".join(parts)


def _equals(shown: str, expected: float) -> bool:
    value = float(shown.replace(",", ""))
    if "." not in shown:
        return float(expected).is_integer() and value == expected and abs(expected) >= MIN_WHOLE
    places = len(shown.split(".")[1])
    significant = len(shown.replace(",", "").replace("-", "").replace(".", "").lstrip("0"))
    return significant >= 2 and math.isclose(round(expected, places), value, abs_tol=10 ** -(places + 3))


def _numbers(text: str) -> list[str]:
    """The numbers a cell printed, measurements left out (MEASURED)."""
    return [m.group() for m in NUMBER.finditer(text) if not MEASURED.match(text, m.end())]


def answered_before(notebook: nbformat.NotebookNode, found: dict[int, list[float]]) -> list[str]:
    """Each exercise answer printed by a cell before the exercise's check cell, as a sentence naming both cells."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    shown = [_numbers(printed(cell)) for cell in code]
    leaks = []
    for check_cell, answers in found.items():
        for expected in answers:
            for index in range(int(check_cell)):
                leaks += [f"code cell {index} shows {number}, the answer checked in code cell {check_cell}"
                          for number in shown[index] if _equals(number, expected)]
    return leaks


def read_probe(stdout: str) -> dict[int, list[float]]:
    """The probe's JSON line, with the cell indices as ints."""
    return {int(k): v for k, v in json.loads(stdout.strip().splitlines()[-1]).items()}
