"""How long a lesson takes a learner, estimated the same way for every lesson (the README's lesson map uses it).

Prose at 200 words a minute, code at 10 lines a minute (read, run, and its output looked at), 3 minutes
for each widget the lesson hands over to play with, 4 minutes for each check-yourself exercise; the sum
rounded up to 5 minutes. `python -m workbook.lessons.reading_time` prints every lesson's estimate.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import jupytext

WORDS_PER_MIN, CODE_LINES_PER_MIN, WIDGET_MIN, EXERCISE_MIN = 200, 10, 3, 4
WIDGET_SHOWN = re.compile(r"(\.widget|display\(.*widget.*\))\s*$")  # a cell that ends by showing a widget


def reading_minutes(source: Path) -> int:
    """The estimate for one lesson (`notebooks/NN_topic.py`), in minutes, a multiple of 5."""
    cells = jupytext.read(source).cells
    prose = [c.source for c in cells if c.cell_type == "markdown"]
    code = [c.source for c in cells if c.cell_type == "code"]
    words = sum(len(re.findall(r"\w+", text)) for text in prose)
    lines = sum(1 for text in code for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
    widgets = sum(1 for text in code if text.strip() and WIDGET_SHOWN.search(text.strip().splitlines()[-1]))
    exercises = sum(text.count("**Exercise") for text in prose)
    minutes = words / WORDS_PER_MIN + lines / CODE_LINES_PER_MIN + widgets * WIDGET_MIN + exercises * EXERCISE_MIN
    return 5 * math.ceil(minutes / 5)


if __name__ == "__main__":
    from ..paths import REPO_DIR

    for path in sorted((REPO_DIR / "notebooks").glob("[0-9][0-9]_*.py")):
        print(f"{path.stem:28} {reading_minutes(path)} min")
