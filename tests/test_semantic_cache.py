"""SemanticCache: the threshold boundary, the exact path, TTLs, invalidation, namespaces, the verification stage, bad input.

A table embedder with hand-placed unit vectors makes every cosine exact, so the boundary is tested to the
last digit; test_semantic_models.py runs the cache on the real embedding model.
"""

import math

import numpy as np
import pytest

from workbook.errors import EmptyInputError, WorkbookError
from workbook.semantic import SemanticCache


class Table:
    """Unit vectors chosen by hand: text -> angle, so cosine(a, b) = cos(angle_a - angle_b). Counts its calls."""

    def __init__(self, angles):
        self.angles, self.calls = angles, 0

    def __call__(self, text):
        self.calls += 1
        a = self.angles[text]
        return np.array([math.cos(a), math.sin(a)], np.float32)


ANGLES = {"reset my password": 0.0, "I forgot my password": math.acos(0.8), "where is my parcel": 1.5,
          "refund for order 1234": 2.0, "refund for order 1243": 2.01, "refund order 1234 please": 2.02}


@pytest.fixture
def cache():
    """A plain threshold cache: the verification stage is tested on its own below."""
    return SemanticCache(Table(ANGLES), threshold=0.8, verify=None)


def test_the_threshold_is_inclusive_and_exact(cache):
    cache.put("reset my password", "Use the reset link.")
    hit = cache.get("I forgot my password")
    assert hit is not None and hit.answer == "Use the reset link." and not hit.exact
    assert hit.similarity == pytest.approx(0.8, abs=1e-6) and hit.query == "reset my password"
    cache.threshold = 0.8 + 1e-5
    assert cache.get("I forgot my password") is None
    assert cache.get("where is my parcel") is None


def test_the_exact_text_is_served_without_embedding(cache):
    cache.put("reset my password", "Use the reset link.", now=100.0)
    calls = cache.embedder.calls
    hit = cache.get("  reset my password ", now=130.0)
    assert hit.exact and hit.similarity == 1.0 and hit.age_s == 30.0
    assert cache.embedder.calls == calls
    assert cache.stats().exact_hits == 1 and cache.stats().hits == 1 and cache.stats().lookups == 1


def test_ttl_expires_entries_and_removes_them(cache):
    cache.put("reset my password", "a", ttl_s=10, now=0.0)
    cache.put("where is my parcel", "b", now=0.0)
    assert cache.get("I forgot my password", now=9.99).answer == "a"
    assert cache.get("I forgot my password", now=10.0) is None
    assert cache.get("reset my password", now=10.0) is None  # the exact path expires too
    assert len(cache) == 1 and cache.get("where is my parcel", now=1e9).answer == "b"


def test_a_new_answer_for_the_same_query_replaces_the_old(cache):
    cache.put("reset my password", "old", ttl_s=5, now=0.0)
    cache.put("reset my password", "new", now=1.0)
    assert len(cache) == 1
    assert cache.get("I forgot my password", now=100.0).answer == "new"  # and the new entry has no TTL


def test_invalidate_drops_what_the_event_touches(cache):
    cache.put("reset my password", "a", meta={"policy": "accounts"})
    cache.put("refund for order 1234", "Refunds take 5 days.", meta={"policy": "refunds"})
    cache.put("where is my parcel", "c", namespace="tenant-b", meta={"policy": "refunds"})
    assert cache.invalidate(lambda e: e.meta.get("policy") == "refunds") == 2
    assert cache.get("refund for order 1234") is None
    assert cache.get("reset my password").answer == "a"
    assert cache.get("where is my parcel", namespace="tenant-b") is None
    assert cache.invalidate(lambda e: False) == 0


def test_namespaces_never_see_each_other(cache):
    cache.put("reset my password", "tenant A's answer", namespace="a")
    assert cache.get("reset my password", namespace="b") is None
    assert cache.get("I forgot my password") is None  # the default namespace is a namespace too
    assert cache.get("I forgot my password", namespace="a").answer == "tenant A's answer"


def test_the_verification_stage_refuses_a_different_number_and_serves_the_next_candidate():
    cache = SemanticCache(Table(ANGLES), threshold=0.9)  # with the default verification stage
    cache.put("refund for order 1243", "about order 1243")
    assert cache.get("refund for order 1234") is None  # cosine 0.99995, but the order numbers differ
    assert cache.stats().refused == 1
    cache.put("refund order 1234 please", "about order 1234")  # less similar, but about the right order
    hit = cache.get("refund for order 1234")
    assert hit.answer == "about order 1234" and hit.similarity < float(np.cos(0.01))
    plain = SemanticCache(Table(ANGLES), threshold=0.9, verify=None)
    plain.put("refund for order 1243", "about order 1243")
    assert plain.get("refund for order 1234").answer == "about order 1243"  # the false hit a plain threshold serves


def test_the_most_similar_entry_wins(cache):
    cache.put("reset my password", "far")
    cache.put("refund order 1234 please", "near")
    assert cache.get("refund for order 1234").answer == "near"


def test_stats_count_bytes_and_reported_false_hits(cache):
    cache.put("reset my password", "Use the reset link.")
    cache.get("I forgot my password")
    cache.report_false_hit()
    s = cache.stats()
    assert (s.lookups, s.hits, s.false_hits, s.entries) == (1, 1, 1, 1) and s.hit_rate == 1.0
    assert s.bytes == 2 * 4 + len("reset my password") + len("Use the reset link.")


@pytest.mark.parametrize("call, message", [
    (lambda c: c.put("", "a"), "non-empty"),
    (lambda c: c.put("   ", "a"), "non-empty"),
    (lambda c: c.get(""), "non-empty"),
    (lambda c: c.get(None), "non-empty"),
    (lambda c: c.put("reset my password", 42), "text"),
    (lambda c: c.put("reset my password", "a", ttl_s=0), "above 0"),
    (lambda c: c.put("reset my password", "a", ttl_s=-5), "above 0"),
    (lambda c: c.put("reset my password", "a", meta=["x"]), "dict"),
    (lambda c: setattr(c, "threshold", 1.5), "between -1 and 1"),
    (lambda c: setattr(c, "threshold", "0.8"), "between -1 and 1"),
    (lambda c: setattr(c, "threshold", True), "between -1 and 1"),
])
def test_bad_input_is_refused_and_changes_nothing(cache, call, message):
    cache.put("where is my parcel", "b", now=0.0)
    before = (len(cache), cache.stats(), cache.threshold)
    with pytest.raises(WorkbookError, match=message):
        call(cache)
    assert (len(cache), cache.stats(), cache.threshold) == before
    assert cache.get("where is my parcel").answer == "b"


def test_an_empty_query_is_an_empty_input_error(cache):
    with pytest.raises(EmptyInputError):
        cache.get(" ")
