"""The facilitator's page: the live grid, drawn by inline JavaScript that asks the collector for `grid.json` every few
seconds. No script, style or font comes from anywhere else, so the page works on a room's network with no internet."""

from __future__ import annotations

import html
import json

from ..widgets.style import ACCEPTED, CHART_COLOURS, REJECTED, TEXT_ON
from .grid import NOT_TRIED, RIGHT, STUCK, STUCK_RULE, TRYING

POLL_SECONDS = 3
# The workbook's palette: green for a right answer (as for an accepted draft), wine for stuck (as for work thrown
# away), pink for one wrong answer, light grey for not tried. Each state has a mark too, for readers who cannot tell
# the colours apart.
STATE_LOOK = {
    RIGHT: {"colour": ACCEPTED, "mark": "✓", "meaning": "right"},
    STUCK: {"colour": REJECTED, "mark": "✗✗", "meaning": STUCK_RULE},
    TRYING: {"colour": CHART_COLOURS[2], "mark": "✗", "meaning": "trying: one wrong answer, no right one yet"},
    NOT_TRIED: {"colour": CHART_COLOURS[5], "mark": "", "meaning": "not tried"},
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The room: Prompt Cache Workbook</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 1.5em; color: #000; }
#headline { font-size: 1.4em; font-weight: bold; margin: .3em 0; }
#status { color: #555; font-size: .85em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #fff; padding: 2px 6px; text-align: center; min-width: 2.2em; }
.lesson-start { border-left: 2px solid #000; }
th.seat { text-align: left; font-weight: normal; max-width: 14em; overflow: hidden; text-overflow: ellipsis; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: 1.6em; text-align: center; border: 1px solid #333; font-style: normal; }
STATE_CSS
</style></head>
<body>
<h1>The room</h1>
<div id="headline">Waiting for the first answer.</div>
<div class="legend">LEGEND</div>
<div id="grid"></div>
<ul id="counts"></ul>
<p id="status">Not asked yet.</p>
<script>
const LOOK = STATE_LOOK_JSON;
const POLL_MS = POLL_SECONDS * 1000;
function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;  // text, never HTML: seats are typed by learners
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}
function draw(g) {
  document.getElementById("headline").textContent = g.headline;
  const table = el("table");
  const lessons = el("tr"), numbers = el("tr");
  lessons.append(el("th")); numbers.append(el("th", "seat"));
  let lesson = null;
  for (const c of g.columns) {
    if (c.lesson !== lesson) {
      lesson = c.lesson;
      lessons.append(el("th", "lesson " + lesson, {colspan: 0, class: "lesson-start"}));
    }
    const span = lessons.lastChild; span.setAttribute("colspan", Number(span.getAttribute("colspan")) + 1);
    numbers.append(el("th", "ex " + c.number, {title: c.exercise, class: c.number === 1 ? "lesson-start" : ""}));
  }
  table.append(lessons, numbers);
  const byKey = new Map(g.cells.map(c => [c.seat + "\\u0000" + c.exercise, c]));
  for (const seat of g.seats) {
    const row = el("tr");
    row.append(el("th", seat, {class: "seat", title: seat}));
    for (const c of g.columns) {
      const cell = byKey.get(seat + "\\u0000" + c.exercise);
      const tip = cell.state === "right" ? "right on try " + cell.right_on_try : cell.state + ", " + cell.wrong + " wrong";
      const start = c.number === 1 ? " lesson-start" : "";
      row.append(el("td", LOOK[cell.state].mark, {"class": "state-" + cell.state.replace(" ", "-") + start,
        "data-seat": seat, "data-exercise": c.exercise, "data-state": cell.state, title: seat + ", " + c.label + ": " + tip}));
    }
    table.append(row);
  }
  document.getElementById("grid").replaceChildren(table);
  document.getElementById("counts").replaceChildren(...g.columns.map(c =>
    el("li", c.label + " (" + c.exercise + "): " + c.summary, {"data-exercise": c.exercise})));
}
async function refresh() {
  const status = document.getElementById("status");
  try {
    const answer = await fetch("grid.json", {cache: "no-store"});
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const g = await answer.json();
    draw(g);
    status.textContent = g.records + " answers received; updated " + new Date().toLocaleTimeString() +
      ", again every " + POLL_SECONDS + " s.";
  } catch (error) {
    status.textContent = "The collector is not answering (" + error.message + "); trying again every " + POLL_SECONDS + " s.";
  }
}
refresh();
setInterval(refresh, POLL_MS);
</script>
</body></html>
"""


def page() -> str:
    """The whole page, with the palette and the stuck rule filled in."""
    css = "\n".join(f".state-{state.replace(' ', '-')} {{ background: {look['colour']}; color: {TEXT_ON[look['colour']]}; }}"
                    for state, look in STATE_LOOK.items())
    legend = "".join(f'<span><i class="state-{state.replace(" ", "-")}">{look["mark"] or "&nbsp;"}</i> '
                     f'{html.escape(look["meaning"])}</span>' for state, look in STATE_LOOK.items())
    return (_PAGE.replace("STATE_CSS", css).replace("LEGEND", legend)
            .replace("STATE_LOOK_JSON", json.dumps(STATE_LOOK)).replace("POLL_SECONDS", str(POLL_SECONDS)))
