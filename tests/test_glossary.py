"""The glossary (`notebooks/glossary.md`): each term is defined, in bold, in the lesson the glossary names, and no
earlier lesson uses it, so a learner going in order never meets a term before its definition.

Only the lessons' prose (markdown cells) is read; inline code (`tokenizer.decode`) is a name, not the term.
"""

import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
GLOSSARY = NOTEBOOKS / "glossary.md"
# How each term is written, plurals and inflections included.
FORMS = {"token": r"tokens?", "prefix": r"prefix(?:es)?", "K/V row": r"K/V rows?", "prefill": r"prefill(?:s|ed)?",
         "decode": r"decod(?:e|es|ing)", "TTFT": r"TTFTs?", "page": r"pages?", "hit": r"hits?", "miss": r"miss(?:es)?",
         "block": r"blocks?", "breakpoint": r"breakpoints?", "lookback": r"lookback", "TTL": r"TTLs?",
         "replica": r"replicas?", "router": r"routers?", "affinity": r"affinity"}
CASE_SENSITIVE = {"TTFT", "TTL"}


def glossary() -> dict[str, int]:
    """{term: the lesson that defines it}, read from the glossary's table."""
    rows = re.findall(r"^\| ([^|]+?) \| (\d+) \|", GLOSSARY.read_text(encoding="utf-8"), re.M)
    return {term: int(lesson) for term, lesson in rows}


def prose(lesson: int) -> str:
    """A lesson's markdown cells, inline code removed."""
    (source,) = NOTEBOOKS.glob(f"{lesson:02d}_*.py")
    text = "\n".join(cell.source for cell in jupytext.read(source).cells if cell.cell_type == "markdown")
    return re.sub(r"`[^`\n]*`", "", text)


def form(term: str) -> re.Pattern:
    return re.compile(rf"(?<![\w/-]){FORMS[term]}(?![\w-])", 0 if term in CASE_SENSITIVE else re.I)


def test_the_glossary_lists_every_term_once():
    assert list(glossary()) == list(FORMS)


@pytest.mark.parametrize("term", list(FORMS))
def test_a_term_is_defined_in_its_lesson_and_used_by_no_earlier_one(term):
    lesson = glossary()[term]
    bold = re.findall(r"\*\*(.+?)\*\*", prose(lesson), re.S)
    assert any(form(term).search(span) for span in bold), \
        f"lesson {lesson} should define {term!r} in bold, where it first explains it"
    for earlier in range(1, lesson):
        used = form(term).search(prose(earlier))
        assert used is None, (f"lesson {earlier} uses {term!r} ({prose(earlier)[max(0, used.start() - 60):used.end() + 20]!r})"
                              f" before lesson {lesson} defines it")
