"""An embedding tuned on labelled pairs: one linear map on top of the frozen model, trained contrastively.

Fine-tuning all of MiniLM's 22 million weights would give a 90 MB model to ship; a 384 x 384 map
learned on the tuning split is 147,456 weights, trains in seconds on a CPU, and rotates the space so
paraphrases move together and near misses apart (the contrastive loss). It starts as the identity
(the plain model) and is held near it, so it cannot forget what the model knew.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import WorkbookError
from .pairs import Pair, PairScores

MARGIN = 0.5  # near misses are pushed below this cosine; paraphrases pulled toward 1


class AdaptedEmbedder:
    """`base`'s vectors times a learned matrix, normalised again: a drop-in embedder for SemanticCache."""

    def __init__(self, base, matrix: np.ndarray):
        self.base = base
        self.matrix = matrix.astype(np.float32)
        self.name = f"{base.name} + tuned map"

    def __call__(self, texts):
        vectors = self.base(texts) @ self.matrix.T
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def train_adapter(pairs: Sequence[Pair], base, *, steps: int = 100, learning_rate: float = 1e-3,
                  hold: float = 10.0, seed: int = 0) -> AdaptedEmbedder:
    """Learn the map on `pairs` (use the tuning split only): full-batch Adam, `hold` weighs staying near identity."""
    if not pairs or all(p.same for p in pairs) or not any(p.same for p in pairs):
        raise WorkbookError("Training needs both paraphrase and near-miss pairs.")
    torch.manual_seed(seed)
    a = torch.from_numpy(base([p.cached for p in pairs]))
    b = torch.from_numpy(base([p.incoming for p in pairs]))
    same = torch.tensor([p.same for p in pairs])
    eye = torch.eye(a.shape[1])
    matrix = torch.nn.Parameter(eye.clone())
    optimiser = torch.optim.Adam([matrix], lr=learning_rate)
    for _ in range(steps):
        cosine = torch.nn.functional.cosine_similarity(a @ matrix.T, b @ matrix.T)
        loss = torch.where(same, 1 - cosine, torch.relu(cosine - MARGIN)).mean() + hold * (matrix - eye).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return AdaptedEmbedder(base, matrix.detach().numpy())


def cross_validated_scores(pairs: Sequence[Pair], base, *, folds: int = 2) -> PairScores:
    """A tuned embedding scored on tuning pairs it did not learn, so methods can be compared on tuning pairs alone.

    The pairs are dealt into `folds` parts; each part is scored by a map trained on the other parts (cross-validation).
    Scoring the map on the pairs it was trained on would only measure how well it memorised them.
    """
    pairs = list(pairs)
    scores = PairScores(pairs, base, verify=None)  # the plain similarities, replaced fold by fold below
    for fold in range(folds):
        trained_on = [p for i, p in enumerate(pairs) if i % folds != fold]
        scored = PairScores(pairs[fold::folds], train_adapter(trained_on, base), verify=None)
        scores.similarities[fold::folds] = scored.similarities
    return scores
