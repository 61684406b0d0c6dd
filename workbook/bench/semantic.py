"""The semantic cache's lookup time as it grows: 1,000, 10,000 and 100,000 entries, brute-force cosine.

A lookup is one embedding of the new query (the model's forward pass, the same at any size) plus one
matrix-vector product over every stored vector (which grows with the cache). The two are timed
apart: the search uses a table of precomputed unit vectors as its embedder, so only the search is timed.
The stored vectors are random unit vectors: the product costs the same whatever they hold.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..semantic import SemanticCache, load_embedder
from ..timing import Timing, device_name, measure, save_results

SIZES = (1_000, 10_000, 100_000)
GOAL_S = 0.010  # a lookup should cost a small share of a model call's first-token time
QUERY = "How do I reset my password?"


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="cache sizes to time")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="1,000 entries, 5 repeats: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


class TableEmbedder:
    """Looks vectors up instead of computing them, so the benchmark times the search alone."""

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors

    def __call__(self, text):
        return self.vectors[text]


def run(*, sizes: list[int] = list(SIZES), repeats: int = 50, quick: bool = False, save: bool = True) -> dict:
    sizes, repeats = ([1_000], 5) if quick else (sorted(sizes), repeats)
    embedder = load_embedder(device="cpu")
    embed = measure(lambda: embedder.model.encode([QUERY], normalize_embeddings=True), warmup=2, repeats=repeats,
                    device="cpu")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((max(sizes) + 1, embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = {f"stored question {i}": v for i, v in enumerate(vectors[:-1])} | {QUERY: vectors[-1]}
    search = {}
    for size in tqdm(sizes, desc="cache sizes"):
        cache = SemanticCache(TableEmbedder(table), threshold=0.9)
        for i in range(size):
            cache.put(f"stored question {i}", "an answer")
        search[size] = measure(lambda: cache.get(QUERY), warmup=2, repeats=repeats, device="cpu")
    payload = {"embed_one_query": embed, "search": {str(n): t for n, t in search.items()},
               "torch_threads": torch.get_num_threads(), "dim": embedder.dim, "goal_s": GOAL_S,
               "model": embedder.name}
    print_report(payload)
    if save and not quick:
        print(f"saved to {save_results('semantic', payload, device='cpu')}")
    return payload


def print_report(p: dict) -> None:
    embed: Timing = p["embed_one_query"]
    print(f"Semantic cache lookups on {device_name('cpu')}, torch threads: {p['torch_threads']}")
    print(f"  embedding one query ({p['model']}, {p['dim']} dims): {embed.median_s * 1e3:.2f} ms (median)")
    for size, t in p["search"].items():
        print(f"  search over {int(size):>7,} entries: {t.median_s * 1e3:.3f} ms (median; p90 {t.p90_s * 1e3:.3f} ms)")
