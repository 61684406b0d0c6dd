"""The shipped data of lesson 8 (data/semantic/): the labelled pairs, the intents and the day's query log.

These check the schema and the promises the lessons rely on (both splits cover every kind of pair, no cached
question leaks from tune into heldout, the log is one day in order), read with plain csv/json and through the
workbook's loaders.
"""

import csv
import json
from collections import Counter

import pytest

from workbook.errors import WorkbookError
from workbook.paths import DATA_DIR
from workbook.semantic import load_intents, load_pairs, load_query_log

SEMANTIC = DATA_DIR / "semantic"
PAIR_COLUMNS = ["pair_id", "split", "label", "kind", "domain", "cached", "incoming"]
NEAR_MISS_KINDS = {"number", "negation", "opposite", "entity", "object"}
COMBINATIONS = {("same", "paraphrase")} | {("near_miss", kind) for kind in NEAR_MISS_KINDS}
LOG_COLUMNS = ["t_s", "user", "intent", "query"]
DAY_S = 24 * 60 * 60


@pytest.fixture(scope="module")
def pair_rows():
    with open(SEMANTIC / "pairs.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def log_rows():
    with open(SEMANTIC / "query_log.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def intents_json():
    return json.loads((SEMANTIC / "intents.json").read_text(encoding="utf-8"))


# --- pairs.csv ---------------------------------------------------------------------------------------------

def test_pairs_have_exactly_the_documented_columns_and_enough_rows(pair_rows):
    """The header is exactly the seven columns `Pair` takes, and there are at least 300 pairs."""
    fields, rows = pair_rows
    assert fields == PAIR_COLUMNS
    assert len(rows) >= 300
    assert all(None not in row and len(row) == len(PAIR_COLUMNS) for row in rows)  # no ragged rows


def test_pair_ids_are_unique(pair_rows):
    """No two rows share a pair_id."""
    ids = [row["pair_id"] for row in pair_rows[1]]
    assert len(set(ids)) == len(ids)


def test_no_field_is_empty(pair_rows):
    """Every field of every pair holds text (not just spaces)."""
    empty = [(row["pair_id"], key) for row in pair_rows[1] for key, value in row.items() if not value.strip()]
    assert empty == []


def test_labels_and_kinds_go_together(pair_rows):
    """Labels are same/near_miss; a `same` pair is a paraphrase, a near miss one of the five near-miss kinds."""
    for row in pair_rows[1]:
        assert row["label"] in ("same", "near_miss"), row
        if row["label"] == "same":
            assert row["kind"] == "paraphrase", row
        else:
            assert row["kind"] in NEAR_MISS_KINDS, row


def test_each_split_contains_every_label_and_kind(pair_rows):
    """tune and heldout are the only splits, and each holds every (label, kind) combination."""
    rows = pair_rows[1]
    assert {row["split"] for row in rows} == {"tune", "heldout"}
    for split in ("tune", "heldout"):
        found = {(row["label"], row["kind"]) for row in rows if row["split"] == split}
        assert found == COMBINATIONS, split


def test_no_cached_question_is_shared_across_splits(pair_rows):
    """A cached query in the tuning split never reappears in the held-out split (no leak between them)."""
    cached = {split: {row["cached"].strip().lower() for row in pair_rows[1] if row["split"] == split}
              for split in ("tune", "heldout")}
    assert cached["tune"] and cached["heldout"]
    assert cached["tune"].isdisjoint(cached["heldout"])


def test_a_pair_is_two_different_queries(pair_rows):
    """The incoming query is never the cached text itself: that would be an exact hit, not a semantic one."""
    assert all(row["cached"].strip() != row["incoming"].strip() for row in pair_rows[1])


def test_load_pairs_splits_partition_the_file(pair_rows):
    """load_pairs("tune") + load_pairs("heldout") is load_pairs(), row for row, and matches the raw csv."""
    everything = load_pairs()
    tune, heldout = load_pairs("tune"), load_pairs("heldout")
    assert tune and heldout
    assert all(p.split == "tune" for p in tune) and all(p.split == "heldout" for p in heldout)
    assert sorted(tune + heldout, key=lambda p: p.pair_id) == sorted(everything, key=lambda p: p.pair_id)
    assert [p.pair_id for p in everything] == [row["pair_id"] for row in pair_rows[1]]
    assert all(p.same == (p.label == "same") for p in everything)


def test_load_pairs_refuses_an_unknown_split():
    """A split other than tune/heldout/None is a WorkbookError naming what was asked for."""
    with pytest.raises(WorkbookError, match="bogus"):
        load_pairs("bogus")


# --- intents.json ------------------------------------------------------------------------------------------

def test_each_intent_has_an_answer_and_a_policy_or_none(intents_json):
    """Every intent is {answer: non-empty text, policy: text or null}, nothing else; load_intents reads them all."""
    assert intents_json
    for name, entry in intents_json.items():
        assert set(entry) == {"answer", "policy"}, name
        assert isinstance(entry["answer"], str) and entry["answer"].strip(), name
        assert entry["policy"] is None or (isinstance(entry["policy"], str) and entry["policy"].strip()), name
    loaded = load_intents()
    assert set(loaded) == set(intents_json)
    assert all(loaded[n].answer == e["answer"] and loaded[n].policy == e["policy"] for n, e in intents_json.items())


def test_other_is_not_an_intent(intents_json):
    """"other" marks one-off queries in the log; it must not also be a real intent with an answer."""
    assert "other" not in intents_json


# --- query_log.csv -----------------------------------------------------------------------------------------

def test_the_log_is_400_queries_in_time_order_within_one_day(log_rows):
    """400 rows; t_s are integers, strictly increasing, from 0 up to (not including) 24 hours."""
    fields, rows = log_rows
    assert fields == LOG_COLUMNS
    assert len(rows) == 400
    times = [int(row["t_s"]) for row in rows]
    assert [str(t) for t in times] == [row["t_s"] for row in rows]  # written as plain integers
    assert all(a < b for a, b in zip(times, times[1:]))
    assert 0 <= times[0] and times[-1] < DAY_S
    assert all(row["user"].strip() and row["query"].strip() for row in rows)


def test_every_logged_intent_is_known_or_other(log_rows, intents_json):
    """Each query's intent is one in intents.json, or "other" for a one-off."""
    unknown = {row["intent"] for row in log_rows[1]} - set(intents_json) - {"other"}
    assert unknown == set()


def test_other_queries_are_unique(log_rows):
    """A query labelled "other" is a one-off: its text appears once in the whole log."""
    texts = Counter(row["query"].strip() for row in log_rows[1])
    repeated = [row["query"] for row in log_rows[1] if row["intent"] == "other" and texts[row["query"].strip()] > 1]
    assert any(row["intent"] == "other" for row in log_rows[1])
    assert repeated == []


def test_load_query_log_reads_every_row(log_rows):
    """load_query_log gives the csv's rows in order, with t_s as int."""
    logged = load_query_log()
    assert [(q.t_s, q.user, q.intent, q.query) for q in logged] == \
        [(int(r["t_s"]), r["user"], r["intent"], r["query"]) for r in log_rows[1]]
    assert all(isinstance(q.t_s, int) for q in logged)


def test_a_malformed_pairs_file_is_refused_with_the_pair_named(tmp_path):
    """Your own pairs file gets the shipped file's checks: a label outside same/near_miss names the bad pair."""
    bad = tmp_path / "pairs.csv"
    bad.write_text("pair_id,split,label,kind,domain,cached,incoming\n"
                   "x1,tune,same,paraphrase,support,a,b\nx2,tune,maybe,paraphrase,support,a,b\n", encoding="utf-8")
    with pytest.raises(WorkbookError, match="x2"):
        load_pairs(path=bad)
