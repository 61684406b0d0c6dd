"""The doctor's report as one self-contained HTML page: summary, causes, a chart of every request, every finding, the fixes.

The page opens offline and fetches nothing. Every piece of log text is escaped.
The chart is inline SVG (see `chart_html`); `tokens_chart` draws the same as a plotly figure for notebooks.
The summary pieces (`cause_rows`, `cost_after`, `best_fix_line`, the notes) are shared with the command line.
"""

from __future__ import annotations

from html import escape
from os.path import commonprefix
from pathlib import Path
from typing import TYPE_CHECKING

from . import Finding, FixResult, Report
from .causes import ALL_CAUSES

if TYPE_CHECKING:
    import plotly.graph_objects as go

# The widgets' provenance colours (`workbook.widgets.style.PROVENANCE_COLOURS`: loaded, invalidated, computed), with the
# same meanings: reused, thrown away, new. Written out here because that module imports ipywidgets and the doctor's
# command line does not; tests/test_doctor_cli.py keeps the two equal.
SHARED, LOST, NEW = "#0072B2", "#882255", "#E69F00"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { white-space: pre-wrap; word-break: break-all; font-size: 0.85em; }
td.snip { min-width: 30em; }
mark { background: #882255; color: #fff; }
.note { color: #555; max-width: 60em; }
"""


def tokenizer_note(report: Report) -> str:
    """Which count the report uses, and how far it is from the provider's where the log reports usage."""
    name = report.diagnosis.tokenizer_name
    if report.calibration is None:
        return (f"Token counts use the workbook's tokenizer ({name!r}); each provider's own tokenizer splits text "
                "differently, so read counts and dollars as close estimates.")
    return (f"Token counts use the workbook's tokenizer ({name!r}). Where the log reports usage, the provider counts "
            f"{report.calibration:.2f} tokens for each of ours ({calibrated_gap(report)}): the calibrated column "
            "multiplies by that; simulated dollars use our counts.")


def calibrated_gap(report: Report) -> str:
    """The calibration in words: 'ours run 38% high', 'ours run 5% low', 'the same'."""
    gap = 1 / report.calibration - 1
    return "the same" if round(gap, 2) == 0 else f"ours run {abs(gap):.0%} {'high' if gap > 0 else 'low'}"


def cause_rows(report: Report) -> list[tuple[str, int, int, str]]:
    """(cause, requests it broke, tokens it lost, what it means) for each cause, most tokens lost first."""
    lost = report.diagnosis.lost_by_cause()
    rows = [(name, count, lost.get(name, 0), ALL_CAUSES[name]) for name, count in report.diagnosis.causes.items()]
    return sorted(rows, key=lambda row: (-row[2], -row[1], row[0]))


def saved(report: Report, fix: FixResult, model_key: str) -> tuple[float, float]:
    """(dollars a fix saves on the log at `model_key`, as a share of today's cost)."""
    now = report.cost_now_usd[model_key]
    return now - fix.cost_usd[model_key], (now - fix.cost_usd[model_key]) / now if now else 0.0


def cost_after(report: Report, fix: FixResult, model_key: str) -> str:
    """The log's cost after a fix and the change in its bill: '$0.0388 (-56%)', or '(±0%)' if it rounds to nothing."""
    change = f"{-saved(report, fix, model_key)[1]:+.0%}"
    return f"${fix.cost_usd[model_key]:,.4f} ({'±0%' if change in ('+0%', '-0%') else change})"


def best_fix_line(report: Report) -> str:
    """The fix that saves most at the first provider, in one sentence; or that none saves anything."""
    best, key = report.best_fix, report.model_keys[0]
    usd, share = saved(report, best, key)
    if round(usd, 4) <= 0:
        return f"No fix lowers the bill at {key}."
    return f"Best at {key}: {best.name}, saving ${usd:,.4f} ({share:.0%})."


def reported_note(report: Report) -> str:
    """Which bills the reported cached tokens are compared with, and a warning when that is not like for like."""
    key = report.model_keys[0]
    shapes = {r.shape for r in report.records} - {"prompt"}
    note = f"Reported: the log's own usage. Simulated: what the simulator bills at {key}."
    if shapes and shapes != {key.split("/")[0]}:
        note += (f" The log is in {'/'.join(sorted(shapes))} shape, so list a model of that provider first "
                 "to compare like with like.")
    return note


def new_tokens(f: Finding) -> int:
    """Tokens of a request that no earlier request could have supplied, even with a byte-stable static region."""
    return f.tokens - f.shared_tokens - f.lost_tokens


def report_html(report: Report, *, title: str = "Cache doctor report", source: str = "") -> str:
    """The whole report as an HTML page whose scripts are all inline."""
    sections = [f"<h1>{escape(title)}</h1>", summary_html(report, source), causes_html(report), chart_html(report),
                fixes_html(report), findings_html(report), reported_html(report)]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(s for s in sections if s) + "\n</body></html>\n")


def write_html(report: Report, path: str | Path, *, title: str = "Cache doctor report", source: str = "") -> Path:
    """Write `report_html(report)` to `path`; returns the path."""
    path = Path(path)
    path.write_text(report_html(report, title=title, source=source), encoding="utf-8")
    return path


def summary_html(report: Report, source: str) -> str:
    """The headline numbers: requests, tokens, hit rates, today's cost per provider, the best fix."""
    d = report.diagnosis
    rows = [("log", escape(source) or "(given in Python)"), ("requests", f"{len(d.findings):,}"),
            ("call types", f"{len(d.streams()):,}"), ("prompt tokens", f"{d.tokens:,}"),
            ("hit rate achieved", f"{report.achieved_hit_rate:.1%} ("
             + ("as the log reports it)" if report.reported else f"simulated at {escape(report.model_keys[0])})")),
            ("hit rate achievable", f"{report.achievable_hit_rate:.1%} (simulated after the fixes that lower the bill)")]
    rows += [(f"cost now at {escape(key)}", f"${usd:,.4f}") for key, usd in report.cost_now_usd.items()]
    rows.append(("best fix", escape(best_fix_line(report))))
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<h2>Summary</h2><table>{body}</table><p class=\"note\">{escape(tokenizer_note(report))}</p>"


def causes_html(report: Report) -> str:
    """A row per cause: requests it broke, tokens it lost, what it means."""
    rows = cause_rows(report)
    if not rows:
        return "<h2>Causes</h2><p>No request broke the prefix of an earlier one.</p>"
    body = "".join(f'<tr><td>{escape(name)}</td><td class="n">{count:,}</td><td class="n">{lost:,}</td>'
                   f"<td>{escape(rule)}</td></tr>" for name, count, lost, rule in rows)
    return ("<h2>Causes</h2><table><tr><th>cause</th><th>requests</th><th>tokens lost</th><th>what it means</th></tr>"
            f"{body}</table>")


def tokens_chart(report: Report) -> go.Figure:
    """A plotly figure, one stacked bar per request: tokens shared with an earlier request, lost to a cause, and new."""
    import plotly.graph_objects as go  # only when a chart is drawn: the command line's text needs no plotly

    findings = report.diagnosis.findings
    x = [f"line {f.line}" for f in findings]
    fig = go.Figure([go.Bar(name=name, x=x, y=[value(f) for f in findings], marker_color=colour)
                     for name, value, colour in (("shared", lambda f: f.shared_tokens, SHARED),
                                                 ("lost", lambda f: f.lost_tokens, LOST), ("new", new_tokens, NEW))])
    fig.update_layout(barmode="stack", height=360, margin=dict(l=40, r=20, t=30, b=40),
                      yaxis_title="prompt tokens", legend_title="tokens", legend_traceorder="normal")
    return fig


def chart_html(report: Report) -> str:
    """`svg_chart` with its heading and legend. The page draws it as inline SVG, not with plotly: plotly.js alone
    weighs more than 3 MB, and the page stays self-contained and small (tests keep 30 requests under 1 MB)."""
    legend = " ".join(f'<span style="color:{colour}">&#9632;</span> {name}'
                      for name, colour in (("shared", SHARED), ("lost", LOST), ("new", NEW)))
    return ("<h2>Tokens per request</h2><p class=\"note\">Shared: the prefix an earlier request already held. "
            "Lost: static tokens past the divergence, which a byte-stable static region would have shared. "
            f"New: the rest.</p><p>{legend}</p>" + svg_chart(report))


def svg_chart(report: Report, height: int = 240, widest: int = 1400) -> str:
    """One stacked bar per request (shared, lost, new tokens), as inline SVG with a tooltip per bar; bars are 14
    pixels apart, or narrower so that a long log stays `widest` pixels wide."""
    findings = report.diagnosis.findings
    bar = max(1.0, min(14.0, widest / max(1, len(findings))))
    top = max((f.tokens for f in findings), default=1) or 1
    rects = []
    for i, f in enumerate(findings):
        y = height
        for name, value, colour in (("shared", f.shared_tokens, SHARED), ("lost", f.lost_tokens, LOST),
                                    ("new", new_tokens(f), NEW)):
            h = value * height / top
            y -= h
            rects.append(f'<rect x="{i * bar:.1f}" y="{y:.1f}" width="{bar * 6 / 7:.1f}" height="{h:.1f}" fill="{colour}">'
                         f"<title>line {f.line}: {value:,} {name}</title></rect>")
    width = round(max(1, len(findings)) * bar)
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="tokens per request">{"".join(rects)}</svg>')


def fixes_html(report: Report) -> str:
    """A row per fix: what it does, the share of prompt tokens the first provider reads from cache and the log's cost
    at each provider after it."""
    keys = report.model_keys
    head = "".join(f"<th>{escape(key)}</th>" for key in keys)
    now = "".join(f'<td class="n">${usd:,.4f}</td>' for usd in report.cost_now_usd.values())
    rows = [f'<tr><td>now</td><td></td><td class="n">{report.cached_share:.1%}</td>{now}</tr>']
    for fix in report.fix_results:
        cells = "".join(f'<td class="n">{cost_after(report, fix, key)}</td>' for key in keys)
        rows.append(f'<tr><td>{escape(fix.name)}</td><td>{escape(fix.does)}</td>'
                    f'<td class="n">{fix.cached_share:.1%}</td>{cells}</tr>')
    return ("<h2>Fixes, simulated on the whole log</h2><table><tr><th>fix</th><th>what it does</th>"
            f"<th>cached at {escape(keys[0])}</th>{head}</tr>{''.join(rows)}</table>")


def findings_html(report: Report) -> str:
    """A row per request: tokens, shared, lost, the first divergence with its differing characters marked, the cause."""
    rows = []
    for f in report.diagnosis.findings:
        before, after = highlight(f.before, f.after)
        where = ("first request" if f.match_line is None else
                 f"vs line {f.match_line}" + ("" if f.char_at is None else f", character {f.char_at:,}"))
        snippet = (f"<br><small>line {f.match_line}</small> <code>{before}</code>"
                   f"<br><small>line {f.line}</small> <code>{after}</code>") if f.before or f.after else ""
        cause = "<br>".join(f"<b>{escape(c.name)}</b>: {escape(c.rule)}" + (f"<br>{escape(c.detail)}" if c.detail else "")
                            for c in ([f.cause] if f.cause else []) + list(f.problems))
        numbers = "".join(f'<td class="n">{n:,}</td>' for n in (f.line, f.tokens, f.shared_tokens, f.lost_tokens))
        rows.append(f'<tr>{numbers}<td class="snip">{where}{snippet}</td><td>{cause}</td></tr>')
    return ("<h2>Every request</h2><table><tr><th>line</th><th>tokens</th><th>shared</th><th>lost</th>"
            f"<th>first divergence (earlier request, then this one)</th><th>cause</th></tr>{''.join(rows)}</table>")


def reported_html(report: Report) -> str:
    """Cached tokens per request as the log reported them and as the simulator bills them; empty without usage."""
    rows = report.reported_vs_simulated()
    if not rows:
        return ""
    body = "".join(f'<tr><td class="n">{line}</td><td class="n">{r:,}</td><td class="n">{s:,}</td></tr>'
                   for line, r, s in rows)
    return (f"<h2>Cached tokens: reported vs simulated</h2><p class=\"note\">{escape(reported_note(report))}</p>"
            f"<table><tr><th>line</th><th>reported</th><th>simulated</th></tr>{body}</table>")


def highlight(before: str, after: str) -> tuple[str, str]:
    """Both snippets escaped, with the characters between their common start and common end marked."""
    start, end = len(commonprefix([before, after])), 0
    while end < min(len(before), len(after)) - start and before[-1 - end] == after[-1 - end]:
        end += 1

    def marked(text: str) -> str:
        middle, tail = text[start:len(text) - end], text[len(text) - end:]
        return escape(text[:start]) + (f"<mark>{escape(middle)}</mark>" if middle else "") + escape(tail)

    return marked(before), marked(after)
