"""Prompt Cache Workbook: the inference machinery behind prompt caching, small enough to read."""

from .checkpoints import default_draft_model, default_model
from .engine import Engine, GenerationResult
from .errors import (ContextLengthError, EmptyInputError, UnknownModelError, UnsupportedModelError,
                     WorkbookError)
from .kv_cache import KVCache
from .model import ModelConfig, Transformer, load_model
from .prefix_cache import CacheBudgetError, PrefixCache
from .pricing import PriceSheet, Usage, cost, load_price_sheets
from .tokenizer import BPETokenizer, first_divergence, load_tokenizer

__all__ = [
    "BPETokenizer", "CacheBudgetError", "ContextLengthError", "Engine", "GenerationResult", "EmptyInputError", "KVCache", "ModelConfig", "PrefixCache", "PriceSheet", "Transformer", "Usage", "UnknownModelError",
    "UnsupportedModelError", "WorkbookError", "cost", "default_draft_model", "default_model", "load_price_sheets", "first_divergence", "load_model", "load_tokenizer",
]
