"""The leak finder of `exercise_answers` on small notebooks built here: it finds an answer printed before its exercise,
in any form a cell shows a number, and nothing else. The lessons themselves are checked on their one run in
tests/test_browser.py."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from exercise_answers import answered_before, check_calls, read_probe


def lesson(*cells: tuple[str, str]) -> nbformat.NotebookNode:
    """A notebook of code cells, each (source, what it printed)."""
    return new_notebook(cells=[new_code_cell(source, outputs=[new_output("stream", name="stdout", text=text)])
                               for source, text in cells])


def test_an_answer_printed_before_its_exercise_is_found_with_thousands_separators():
    notebook = lesson(("print(reads)", "OpenAI reads 1,408 tokens"), ("answer_1 = None\ncheck_x(answer_1)", ""))
    assert answered_before(notebook, {1: [1408.0]}) == ["code cell 0 shows 1,408, the answer checked in code cell 1"]


def test_a_decimal_answer_is_found_rounded_as_the_cell_printed_it():
    notebook = lesson(("print(rate)", "a break-even of 3.70 per hour"), ("check_y(answer_2)", ""))
    assert len(answered_before(notebook, {1: [3.7037037]})) == 1
    assert answered_before(notebook, {1: [3.6]}) == []


def test_the_same_number_after_the_exercise_or_as_a_small_count_is_not_a_leak():
    notebook = lesson(("print(n)", "24 probes, 1,409 tokens"), ("check_z(answer_3)", ""), ("print(m)", "1,408"))
    assert answered_before(notebook, {1: [1408.0, 24.0]}) == []


def test_a_measured_time_speed_or_ratio_is_not_a_leak_but_a_count_with_a_unit_is():
    notebook = lesson(("print(rows)", "4 requests: 192 tokens/s (3.1x one), 192.0 ms, 192 s, 192 KiB, 192 steps"),
                      ("check_w(answer_1)", ""))
    assert answered_before(notebook, {1: [192.0]}) == [
        "code cell 0 shows 192, the answer checked in code cell 1"] * 2  # the KiB and the steps


def test_the_probe_blanks_the_answer_and_asks_for_the_worked_one():
    notebook = lesson(("answer_1 = None\nlesson2.check_visible_pairs(20, answer_1)", ""),
                      ("check_attention_weights(scores, query_position=2, answer=answer_2)", ""))
    assert check_calls(notebook) == {0: "lesson2.check_visible_pairs(20, None, reveal=True)",
                                     1: "check_attention_weights(scores, query_position=2, answer=None, reveal=True)"}
    assert read_probe('noise\n{"0": [210.0], "1": []}\n') == {0: [210.0], 1: []}
