"""Interactive views for the lessons. Each view keeps its state in a plain object that tests drive from Python."""

from .attention_grid import AttentionGrid
from .audit_view import AuditView
from .cost_calculator import CostCalculatorView
from .decode_stepper import DecodeStepper
from .kv_memory_view import KVMemoryView
from .kv_rows import KVRowsTable
from .measure_again import MeasureAgain
from .pool_view import PoolOccupancyView
from .prefix_demo import PrefixCacheDemo
from .prompt_lab import PromptLabView
from .radix_tree import RadixTreeView
from .serving_timeline import ServingTimelineView
from .speculative_view import SpeculativeView
from .threshold import ThresholdView, WrongAnswerCostView
from .tokens import DivergenceView, TokenStrip

__all__ = ["AttentionGrid", "AuditView", "CostCalculatorView", "DecodeStepper", "DivergenceView", "KVMemoryView", "KVRowsTable", "MeasureAgain",
           "PoolOccupancyView", "PrefixCacheDemo", "PromptLabView", "RadixTreeView", "ServingTimelineView", "SpeculativeView", "ThresholdView", "TokenStrip",
           "WrongAnswerCostView"]
