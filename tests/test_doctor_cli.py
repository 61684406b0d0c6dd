"""`python -m workbook.doctor`: the summary it prints, exit status 2 on bad input, and a self-contained HTML report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from workbook.doctor import diagnose
from workbook.doctor.__main__ import main
from workbook.doctor.report_html import highlight, report_html
from workbook.paths import DATA_DIR

LOG = DATA_DIR / "examples" / "anthropic_log.jsonl"
SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    return diagnose(LOG, provider=[SONNET, GPT])


def write_log(tmp_path, lines) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def line_starting(out: str, first: str) -> list[str]:
    """The cells of the printed line whose first cell is `first`."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


def test_the_summary_shows_the_reports_numbers(report, capsys):
    assert main([str(LOG), "--provider", SONNET, "--provider", GPT]) == 0
    out = capsys.readouterr().out
    d = report.diagnosis
    assert line_starting(out, "requests")[1] == f"{len(d.findings):,}"
    assert f"{d.tokens:,}" in line_starting(out, "prompt")
    assert line_starting(out, "hit")[3] == f"{report.achieved_hit_rate:.1%}" and "as the log reports it" in out
    assert f"{report.achievable_hit_rate:.1%}" in out
    for name, count in d.causes.items():
        cells = [c for c in line_starting(out, name) if c != "(healthy)"]  # the totals' row
        assert cells[1:3] == [f"{count:,}", f"{d.lost_by_cause()[name]:,}"]
    now = line_starting(out, "now")
    assert now[2:4] == [f"${report.cost_now_usd[SONNET]:,.4f}", f"${report.cost_now_usd[GPT]:,.4f}"]
    for fix in report.fix_results:
        assert f"${fix.cost_usd[SONNET]:,.4f}" in line_starting(out, fix.name)
    assert f"Best at {SONNET}: {report.best_fix.name}" in out
    assert f"Simulated: what the simulator bills at {SONNET}." in out and "like with like" not in out
    total = line_starting(out, "total")
    assert total[1:] == [f"{sum(r for _, r, _ in report.reported_vs_simulated()):,}",
                         f"{sum(s for _, _, s in report.reported_vs_simulated()):,}"]
    assert "workbook's tokenizer ('tiny')" in out and "1.00 tokens for each of ours (the same)" in out


def test_comparing_an_openai_log_with_anthropic_bills_says_so(capsys):
    assert main([str(DATA_DIR / "examples" / "openai_log.jsonl"), "--provider", SONNET]) == 0
    assert "The log is in openai shape, so list a model of that provider first" in capsys.readouterr().out


def test_a_log_without_usage_has_no_reported_table(tmp_path, capsys):
    log = write_log(tmp_path, [{"prompt": f"Time: 09:0{i}\nBe brief.\nQuestion {i}"} for i in range(3)])
    assert main([str(log)]) == 0
    assert "reported" not in capsys.readouterr().out


@pytest.mark.parametrize("lines, provider, message", [
    (['{"prompt": "a"}', '{"prompt": "b"'], SONNET, "Line 2 of .* is not valid JSON"),
    (['{"prompt": "a"}'], "openai/gpt-9", "No price sheet for 'openai/gpt-9'. Known ids: .*openai/gpt-5.5"),
])
def test_bad_input_exits_2_with_the_message_on_stderr(tmp_path, capsys, lines, provider, message):
    assert main([str(write_log(tmp_path, lines)), "--provider", provider]) == 2
    captured = capsys.readouterr()
    assert re.match(f"error: {message}", captured.err) and captured.out == ""


def test_a_missing_log_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere.jsonl")]) == 2
    assert "No log at" in capsys.readouterr().err


def test_the_module_runs_as_a_command_without_a_traceback(tmp_path):
    log = write_log(tmp_path, ['{"prompt": "a"}', "not json"])
    done = subprocess.run([sys.executable, "-m", "workbook.doctor", str(log)], capture_output=True, text=True, cwd=REPO,
                          check=False)
    assert done.returncode == 2 and "Line 2" in done.stderr and "Traceback" not in done.stderr


def test_html_is_written_self_contained(tmp_path, capsys):
    page = tmp_path / "report.html"
    assert main([str(LOG), "--html", str(page)]) == 0
    assert f"HTML report written to {page}" in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text) and not re.search(r"<link\b", text)  # nothing to fetch
    assert "<svg" in text and "Plotly" not in text and len(text.encode()) < 1_000_000
    for heading in ("Summary", "Causes", "Tokens per request", "Fixes, simulated on the whole log", "Every request",
                    "Cached tokens: reported vs simulated"):
        assert f"<h2>{heading}" in text


def test_html_escapes_log_text(tmp_path):
    evil = "<script>alert(1)</script>"
    log = [{"messages": [{"role": "system", "content": f"Time: 09:0{i} {evil}\nBe brief & kind."},
                         {"role": "user", "content": f"Q{i} {evil}"}]} for i in range(3)]
    text = report_html(diagnose(log, provider=SONNET), source=evil)
    assert evil not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_differing_characters_are_marked_and_escaped():
    assert highlight("at 09:00 <b>", "at 17:45 <b>") == ("at <mark>09:00</mark> &lt;b&gt;",
                                                         "at <mark>17:45</mark> &lt;b&gt;")
    assert highlight("ab", "abc") == ("ab", "ab<mark>c</mark>")
    assert highlight("same", "same") == ("same", "same")


@pytest.mark.slow
def test_the_page_draws_its_chart_offline_in_chromium(tmp_path, report):
    """Opened from disk in headless Chromium, the page asks for nothing but itself and draws every bar."""
    chromium = Path("/usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not chromium.is_file():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    page_file = tmp_path / "report.html"
    page_file.write_text(report_html(report), encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(page_file.as_uri())
        page.wait_for_selector("svg.chart", timeout=20_000)
        bars = page.locator("svg.chart rect").count()
        browser.close()
    assert requested == [page_file.as_uri()]
    assert bars == 3 * len(report.diagnosis.findings)  # shared, lost and new for every request


# ----- the report an engineer acts on ------------------------------------------------------------------------

def test_each_cause_names_its_first_and_worst_request_with_both_texts(report, capsys):
    assert main([str(LOG), "--top", "2"]) == 0
    out = capsys.readouterr().out
    dated = [f for f in report.diagnosis.findings if f.cause and f.cause.name == "datetime"]
    first, worst = dated[0], max(dated, key=lambda f: (f.lost_tokens, -f.line))
    block = out[out.index("== datetime:"):].split("\n\n")[0]
    assert f"== datetime: {len(dated)} request(s)" in block
    assert f"first: line {first.line} at " in block and f"vs line {first.match_line}, the system prompt: " \
        f"{first.lost_tokens:,} tokens lost" in block
    assert f"line {worst.line}" in block
    # the two texts side by side: the earlier request's clock on the left, this one's on the right
    old, new = first.cause.detail.split(": ", 1)[1].split(" became ")
    row = next(line for line in block.splitlines() if old.strip("'")[-8:] in line and new.strip("'")[-8:] in line)
    assert row.index(old.strip("'")[-8:]) < row.index(new.strip("'")[-8:])


def test_top_json_and_one_request(report, capsys):
    assert main([str(LOG), "--json", "--top", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["requests"] == len(report.diagnosis.findings) and data["achieved_from"] == "reported"
    dated = next(c for c in data["causes"] if c["cause"] == "datetime")
    assert len(dated["worst"]) == 3 and dated["tokens_lost"] == report.diagnosis.lost_by_cause()["datetime"]
    assert [f["line"] for f in data["findings"]] == [f.line for f in report.diagnosis.findings]
    assert main([str(LOG), "--request", "2"]) == 0
    out = capsys.readouterr().out
    second = report.diagnosis.findings[1]
    assert out.startswith("Request at line 2, sent at ") and f"{second.cause.name}: {second.cause.rule}" in out
    assert f"{SONNET}: $" in out and repr(second.after) in out
    assert main([str(LOG), "--request", "99"]) == 2
    assert "no request at line 99" in capsys.readouterr().err


def test_piping_into_head_ends_without_a_traceback():
    command = f"{sys.executable} -m workbook.doctor {LOG} --top 5 | head -n 2"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=REPO, check=False)
    assert len(done.stdout.splitlines()) == 2 and "Traceback" not in done.stderr and "Error" not in done.stderr


def test_html_for_30_requests_is_under_1_mb(tmp_path):
    from workbook.doctor.examples import anthropic_request, START
    import datetime as dt

    log = [anthropic_request(i % 12, START + dt.timedelta(seconds=40 * i)) for i in range(30)]
    text = report_html(diagnose(log, provider=[SONNET, GPT]))
    assert len(text.encode()) < 1_000_000 and text.count("<rect ") == 3 * 30


def test_the_html_report_uses_the_widgets_provenance_colours():
    from workbook.doctor import report_html
    from workbook.widgets.style import PROVENANCE_COLOURS

    assert (report_html.SHARED, report_html.LOST, report_html.NEW) == tuple(
        PROVENANCE_COLOURS[name] for name in ("loaded", "invalidated", "computed"))
    assert f"background: {report_html.LOST}" in report_html.STYLE
