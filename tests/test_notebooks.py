"""Every lesson is a synced, output-free pair, opens with objectives and ends with checks.

The lessons themselves are executed once per run, by tests/test_browser.py (in JupyterLab under headless Chromium,
or by nbclient where Chromium is missing), which makes nbval's cell checks on that one run.
"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def test_there_are_lessons():
    assert SOURCES, "no notebooks/NN_topic.py found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_its_py_and_has_no_outputs(source):
    paired = source.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: run `jupytext --sync {source}`"
    from_py, from_ipynb = jupytext.read(source), nbformat.read(paired, as_version=4)
    assert [(c.cell_type, c.source) for c in from_ipynb.cells] == [(c.cell_type, c.source) for c in from_py.cells], \
        f"{paired.name} differs from {source.name}: run `jupytext --sync {source}`"
    for cell in from_ipynb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{paired.name} carries outputs: clear them"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_lesson_opens_with_objectives_and_ends_with_checks(source):
    cells = jupytext.read(source).cells
    assert cells[0].cell_type == "markdown" and "you will be able to" in cells[0].source.lower()
    assert any("check yourself" in c.source.lower() for c in cells if c.cell_type == "markdown")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_markdown_is_trapped_in_a_code_cell(source):
    """Prose for the reader belongs in a markdown cell: in a code cell it shows as comments and a heading is lost.
    jupytext writes a markdown cell as comment lines, so a missing `# %% [markdown]` leaves lines like these behind:
    an empty comment line (a paragraph break), a heading, or a paragraph opening in bold."""
    trapped = re.compile(r"^#( #+ | \*\*|$)")
    for number, cell in enumerate(jupytext.read(source).cells):
        if cell.cell_type == "code":
            lines = [line for line in cell.source.splitlines() if trapped.match(line)]
            assert not lines, (f"{source.name}, cell {number}: markdown in a code cell ({lines[0]!r}); "
                               "start it with `# %% [markdown]`")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_dollar_signs_in_prose_are_escaped_so_jupyterlab_does_not_typeset_them_as_maths(source):
    """JupyterLab's markdown turns \\$ into a bare $ before MathJax runs, so two of them in a cell become maths;
    \\\\$ reaches MathJax as \\$, which it shows as a dollar sign (the browser test checks what a page shows)."""
    for cell in jupytext.read(source).cells:
        if cell.cell_type == "markdown":
            bare = re.findall(r"(?<!\\\\)\$.{0,20}", cell.source)
            assert not bare, f"{source.name}: write \\\\$ for a dollar sign in markdown, not {bare[0]!r}"


def test_the_lesson_map_gives_each_lessons_estimated_time():
    from workbook.lessons.reading_time import reading_minutes

    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| \[\d\d · [^\]]+\]\(notebooks/(\d\d_\w+)\.ipynb\) \|.*\| (\d+) min \|$", readme, re.M))
    assert sorted(rows) == [s.stem for s in SOURCES]  # every lesson is in the map, and nothing else
    assert {stem: int(m) for stem, m in rows.items()} == {s.stem: reading_minutes(s) for s in SOURCES}


def test_the_instructor_notes_give_the_same_times_as_the_lesson_map():
    from workbook.lessons.reading_time import reading_minutes

    notes = (NOTEBOOKS / "instructor" / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## Lesson (\d+) · .* \((\d+) min\)$", notes, re.M)
    assert headings
    by_number = {s.stem[:2]: s for s in SOURCES}
    for number, minutes in headings:
        assert int(minutes) == reading_minutes(by_number[f"{int(number):02}"]), f"lesson {number}"
