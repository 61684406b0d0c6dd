"""The pattern logs (issue 28, item 9): each reproduces a reported habit, and the doctor names its cause."""

import json
import lzma
import statistics

import pytest

from workbook.bench.doctor_compare import doctor_top
from workbook.doctor.logs import read_log
from workbook.doctor.patterns import PATTERNS, PATTERNS_DIR, load_index, pattern_files
from workbook.paths import DATA_DIR
from workbook.tokenizer import load_tokenizer

INDEX = {p["name"]: p for p in load_index()}
# Patterns whose cause the doctor does not name yet (none at present); each flips to a failure once it does.
NOT_YET: dict[str, str] = {}


def records(name):
    return read_log(PATTERNS_DIR / INDEX[name]["file"])


def test_the_pattern_logs_are_what_the_generator_writes():
    for name, data in pattern_files().items():
        shipped = (PATTERNS_DIR / name).read_bytes()
        if name.endswith(".xz"):
            data, shipped = lzma.decompress(data), lzma.decompress(shipped)
        assert shipped == data, name


@pytest.mark.parametrize("name", sorted(INDEX))
def test_each_log_is_20_to_64_requests_of_up_to_20k_tokens(name):
    logged = [r for r in records(name)]
    sizes = [r.reported_input for r in logged if r.reported_input is not None]
    assert 20 <= len(logged) <= 64
    assert max(sizes) <= 20_000 and statistics.median(sizes) >= 1_000


@pytest.mark.parametrize("name", sorted(INDEX))
def test_reported_usage_counts_every_prompt_token(name):
    # The usage is the simulator's bill: its prompt tokens are the doctor's count of the rendered parts.
    tokenizer = load_tokenizer("tiny")
    for r in records(name)[:6]:
        if r.reported_input is not None:
            assert r.reported_input == sum(len(tokenizer.encode(p.text)) for p in r.parts)
            assert 0 <= (r.reported_cached or 0) <= r.reported_input


def test_the_relay_log_holds_the_apis_refusals_without_usage():
    logged = [json.loads(line) for line in lzma.open(PATTERNS_DIR / INDEX["relay_fifth_breakpoint"]["file"], "rt")]
    refused = [item for item in logged if "error" in item]
    assert refused and all("usage" not in item for item in refused)
    assert {item["error"]["error"]["message"] for item in refused} == {
        "A maximum of 4 blocks with cache_control may be provided. Found 5."}


def test_the_ttl_log_pauses_past_five_minutes_and_the_bill_shows_it():
    logged = records("ttl_pauses")
    gaps = [(b.at_s - a.at_s, b) for a, b in zip(logged, logged[1:])]
    long = [b for gap, b in gaps if gap > 6 * 60]
    assert len(long) >= 5 and max(gap for gap, _ in gaps) <= 23 * 60
    assert all(b.reported_cached == 0 for b in long)  # the entry expired: nothing read after each pause


def test_the_router_log_switches_model_and_back():
    models = [r.model for r in records("router_fallback")]
    switches = sum(a != b for a, b in zip(models, models[1:]))
    assert set(models) == {"gpt-5.5", "gpt-5.4-mini"} and switches == 4


def test_every_pattern_cites_its_source_in_data_readme():
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for pattern in PATTERNS:
        assert f"`{pattern.name}`" in readme
        assert not pattern.source or pattern.source in readme, pattern.name


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[name])) if name in NOT_YET else name
    for name in sorted(INDEX)])
def test_the_doctor_names_each_patterns_cause(name):
    top, causes = doctor_top(PATTERNS_DIR / INDEX[name]["file"])
    assert top == INDEX[name]["expected"], causes
