"""The workbook's own exceptions: each says what was wrong and what to do about it."""


class WorkbookError(ValueError):
    """Bad input to the workbook. A ValueError, so plain `except ValueError` catches it."""


class UnknownModelError(WorkbookError):
    """A model name that is neither shipped, a local folder, nor in the local Hugging Face cache."""


class ModelNotInstalledError(UnknownModelError):
    """A model the workbook knows by name whose file `make setup` has not installed yet."""


class UnsupportedModelError(WorkbookError):
    """A checkpoint whose architecture the workbook's model does not implement."""


class ContextLengthError(WorkbookError):
    """Input longer than the model's context or the cache's capacity."""


class EmptyInputError(WorkbookError):
    """An empty prompt or token list."""


class CacheBudgetError(WorkbookError):
    """A KV pool or prefix cache too small for what was asked of it."""


class AllocationError(WorkbookError):
    """A K/V allocation used after it was freed, freed twice, or rolled back past what it may drop."""
