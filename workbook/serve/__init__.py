"""`python -m workbook.serve`: an OpenAI-compatible HTTP endpoint over one batched `Server` with a prefix cache."""

from .app import MAX_BODY_BYTES, create_app, load_server

__all__ = ["MAX_BODY_BYTES", "create_app", "load_server"]
