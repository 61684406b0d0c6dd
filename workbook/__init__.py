"""Prompt Cache Workbook: the inference machinery behind prompt caching, small enough to read."""

from .checkpoints import default_draft_model, default_model, use_model
from .engine import Engine, GenerationResult
from .errors import (ContextLengthError, EmptyInputError, UnknownModelError, UnsupportedModelError,
                     WorkbookError)
from .kv_cache import KVCache
from .kv_memory import KVMemory, kv_memory
from .model import ModelConfig, Transformer, load_model
from .prefix_cache import CacheBudgetError, PrefixCache
from .pricing import PriceSheet, Usage, cost, load_price_sheets
from .server import Server, StepSnapshot
from .speculative import (Drafter, PromptLookupDrafter, SpeculativeResult, SpeculativeStep, TargetResult,
                          expected_tokens_per_pass, predicted_speedup, speculative_generate, target_generate)
from .tokenizer import BPETokenizer, first_divergence, load_tokenizer

__all__ = [
    "BPETokenizer", "CacheBudgetError", "ContextLengthError", "Drafter", "EmptyInputError", "Engine", "GenerationResult",
    "KVCache", "KVMemory", "ModelConfig", "PrefixCache", "PriceSheet", "PromptLookupDrafter", "SpeculativeResult",
    "Server", "SpeculativeStep", "StepSnapshot", "TargetResult", "Transformer", "UnknownModelError", "UnsupportedModelError", "Usage",
    "WorkbookError", "cost", "default_draft_model", "default_model", "expected_tokens_per_pass", "first_divergence", "kv_memory",
    "load_model", "load_price_sheets", "load_tokenizer", "predicted_speedup", "speculative_generate",
    "target_generate", "use_model",
]
