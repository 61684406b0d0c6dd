"""Prompt Cache Workbook: the inference machinery behind prompt caching, small enough to read.

The names below load on first use (PEP 562's module `__getattr__`), so `import workbook.doctor`, the pricing
and the provider simulator do not pay for torch, which only the model, engine and server need.
"""

import sys
from importlib import import_module
from types import ModuleType

_SOURCES = {  # name -> the submodule that defines it
    "checkpoints": ["default_draft_model", "default_model", "use_model"],
    "engine": ["Engine", "GenerationResult"],
    "errors": ["ContextLengthError", "EmptyInputError", "UnknownModelError", "UnsupportedModelError", "WorkbookError"],
    "kv_cache": ["KVCache"],
    "kv_manager": ["Allocation", "KVManager"],
    "kv_memory": ["KVMemory", "kv_memory"],
    "model": ["ModelConfig", "Transformer", "load_model"],
    "page_pool": ["PagePool"],
    "prefix_cache": ["CacheBudgetError", "PrefixCache"],
    "pricing": ["PriceSheet", "Usage", "cost", "load_price_sheets"],
    "sampling": ["SamplingParams"],
    "server": ["Server", "StepSnapshot"],
    "speculative": ["Drafter", "PromptLookupDrafter", "Speculation", "SpeculativeStep", "SpeculativeTrace",
                    "expected_tokens_per_pass", "predicted_speedup", "speculative_generate", "target_generate"],
    "tokenizer": ["BPETokenizer", "first_divergence", "load_tokenizer"],
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)
_SHADOWED = set(_MODULE_OF) & set(_SOURCES)  # `kv_memory`: an exported function named as its module


class _Package(ModuleType):
    """The package, whose exported `kv_memory` stays the function when its submodule is imported: importing
    `workbook.kv_memory` sets the package's attribute to the submodule, which an eager import overwrote at once."""

    def __setattr__(self, name: str, value) -> None:
        if name in _SHADOWED and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """Import the submodule that defines `name` the first time it is asked for, and keep the name here."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'workbook' has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
