"""`python -m workbook.bench doctor`: the synthetic big log, its measurement, and the side-by-side comparison."""

import json

import pytest

from workbook.bench import doctor as bench
from workbook.bench import doctor_compare as compare
from workbook.doctor.logs import read_log
from workbook.doctor.patterns import PATTERNS_DIR
from workbook.paths import DATA_DIR


@pytest.mark.parametrize("text, size", [("50MB", 50_000_000), ("500KB", 500_000), ("1.5GB", 1_500_000_000),
                                        ("1234", 1234)])
def test_sizes_read_in_decimal_units(text, size):
    assert bench.parse_size(text) == size


def test_the_synthetic_log_reaches_its_size_with_a_clock_and_ticket_per_request(tmp_path):
    path = tmp_path / "log.jsonl"
    n = bench.write_synthetic_log(path, 300_000)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == n and 300_000 <= path.stat().st_size < 300_000 + 10_000  # one request past the size
    records = read_log(path)
    assert [r.at_s for r in records[:3]] == [0.0, bench.GAP_S, 2 * bench.GAP_S]
    clocks = [r.parts[1].text[:38] for r in records if r.parts[1].text.startswith("Current time")]
    assert len(clocks) > n // 3 and len(set(clocks)) == len(clocks)  # each clocked request has its own time
    assert all(f"(ticket {i + 1})" in r.parts[-1].text for i, r in enumerate(records))


def test_the_measurement_reports_time_memory_and_threads(tmp_path, capsys):
    payload = bench.measure(size="200KB", providers=list(bench.DEFAULT_PROVIDERS), save=False)
    assert payload["requests"] > 20 and payload["wall_s"] > 0 and 0 < payload["import_mb"] <= payload["peak_mb"]
    assert payload["threads"] >= 1 and payload["load_average_1m"] >= 0 and payload["cpu_count"] >= 1
    assert payload["torch_loaded"] is False  # the doctor reads, counts and bills without torch
    out = capsys.readouterr().out
    assert "peak" in out and "load average" in out


def test_a_log_becomes_promptcachelints_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    compare.promptcachelint_trace(DATA_DIR / "examples" / "anthropic_log.jsonl", trace)
    records = read_log(DATA_DIR / "examples" / "anthropic_log.jsonl")
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(rows) == len(records) and {row["provider"] for row in rows} == {"anthropic"}
    for row, r in zip(rows, records):
        assert {"system", "tools", "messages"} <= row["body"].keys() and "usage" not in row["body"]
        u = row["usage"]  # promptcachelint's input_tokens is the uncached remainder
        assert u["input_tokens"] + u["cache_read"] + u["cache_write"] == r.reported_input
        assert row["at"] == r.at_s


def test_a_proxy_export_becomes_a_trace_of_its_inner_request(tmp_path):
    trace = tmp_path / "trace.jsonl"
    compare.promptcachelint_trace(PATTERNS_DIR / "router_fallback.jsonl.xz", trace)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {row["model"] for row in rows} == {"gpt-5.5", "gpt-5.4-mini"}
    assert all("messages" in row["body"] and "request_id" not in row["body"] for row in rows)


@pytest.mark.parametrize("finding, cause", [
    ({"code": "CL003", "data": {"key": "model"}}, "model_switch"),
    ({"code": "CL003", "data": {"key": "prompt_cache_key"}}, "cache_key"),
    ({"code": "CL001", "path": "system[0]", "data": {}}, "datetime"),  # a break where CL012 saw a date
    ({"code": "CL001", "path": "messages[3]", "data": {"history_edited": True}}, "history_rewritten"),
    ({"code": "CL001", "path": "messages[0]", "data": {}}, "content"),
    ({"code": "CL006", "data": {}}, "ttl_expiry"),
])
def test_promptcachelints_findings_in_the_doctors_words(finding, cause):
    assert compare.pcl_cause(finding, {"system[0]": "datetime"}) == cause


def test_without_promptcachelint_the_comparison_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(compare, "has_promptcachelint", lambda: False)
    one_log = compare.logs_to_compare()[:1]
    monkeypatch.setattr(compare, "logs_to_compare", lambda: one_log)
    payload = compare.compare(save=False)
    out = capsys.readouterr().out
    assert "pip install promptcachelint" in out and payload["promptcachelint"] is None
    assert payload["rows"][0]["doctor_right"] and "promptcachelint" not in payload["rows"][0]


def test_with_promptcachelint_both_tools_run_on_a_log():
    pytest.importorskip("promptcachelint")  # optional: pip install promptcachelint (Python 3.11+)
    top, causes = compare.promptcachelint_top(PATTERNS_DIR / "router_fallback.jsonl.xz")
    assert top == "model_switch" and causes["model_switch"] == 4


def test_a_log_promptcachelint_cannot_read_is_marked_so_not_called_healthy():
    pytest.importorskip("promptcachelint")
    top, causes = compare.promptcachelint_top(PATTERNS_DIR / "gemini_clock.jsonl.xz")
    assert top == compare.UNREADABLE and "40 unreadable" in causes["promptcachelint"]
