"""Real models' shapes with random weights: timings at production size, with nothing to download.

A forward pass costs the same whatever numbers the weights hold: the same matrix shapes, the same
multiplications, the same memory traffic. So a model built with SmolLM2-135M's shape and random weights
times like SmolLM2-135M, though what it writes is noise. Each shape is a fact from the real model's
`config.json`, shipped in `data/shapes/` with its source.
"""

from __future__ import annotations

import json
import random

import torch

from .errors import WorkbookError
from .model import ModelConfig, Transformer, pick_device, pick_dtype
from .paths import DATA_DIR

SHAPES_DIR = DATA_DIR / "shapes"
RANDOM_WEIGHTS_NOTE = ("The weights are random: a forward pass does the same multiplications and moves the same bytes "
                       "whatever the weights hold, so the timings are the real model's; the tokens it writes are noise.")


def shape_names() -> list[str]:
    """The shapes shipped in data/shapes/, e.g. ['llama-3.2-1b', 'qwen2.5-0.5b', 'smollm2-135m']."""
    return sorted(p.stem for p in SHAPES_DIR.glob("*.json"))


def read_shape(name: str) -> dict:
    """A shipped shape file: the model it comes from, its source page, and its config.json settings."""
    path = SHAPES_DIR / f"{name}.json"
    if not path.is_file():
        raise WorkbookError(f"No shape named {name!r}; the shipped shapes are {', '.join(shape_names())}.")
    return json.loads(path.read_text(encoding="utf-8"))


def random_model(name: str, device: str | torch.device = "auto", dtype=None, *, layers: int | None = None,
                 seed: int = 0) -> Transformer:
    """Our Transformer with the named real model's shape and random weights (normal, std 0.02).

    `layers` keeps only that many decoder layers: a smaller model of the same width, for a quick smoke test.
    """
    from transformers import AutoConfig

    settings = dict(read_shape(name)["config"])
    if layers is not None:
        settings["num_hidden_layers"] = layers
    hf_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    torch.manual_seed(seed)
    with torch.device(pick_device(device)):  # built where it runs: no gigabytes copied from the CPU to a GPU
        model = Transformer(ModelConfig.from_hf(hf_config), hf_config)
    for p in model.parameters():
        if p.dim() > 1:  # weight matrices and embeddings; norms keep their ones, biases their zeros
            torch.nn.init.normal_(p, std=0.02)
    model.name = name
    return model.to(dtype=pick_dtype(dtype)).eval()


def random_ids(rng: random.Random, n: int, vocab_size: int) -> list[int]:
    """`n` token ids drawn uniformly: all a model with random weights needs to be timed, and fresh text nobody sent."""
    return [rng.randrange(vocab_size) for _ in range(n)]


class IdsTokenizer:
    """Random weights speak no language: this stands in for a tokenizer where only token ids are used."""

    eos_token_id = None  # a random model never stops early

    def decode(self, ids) -> str:
        return " ".join(str(i) for i in ids)
