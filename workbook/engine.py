"""One request at a time, with an optional prefix cache, reporting usage and timings the way providers do.

`Engine` is the one-request case of `Server`: the same paged pool, scheduler and forward pass,
so there is one code path for K/V rows whether one request runs or thirty-two.
"""

from __future__ import annotations

from typing import Hashable

from .model import check_request, request_rows
from .prefix_cache import PrefixCache
from .request import GenerationResult, Prompt, Timings, prompt_ids
from .server import Server

__all__ = ["Engine", "GenerationResult", "Prompt", "Timings"]


class Engine:
    """Runs requests on one model; with a `PrefixCache`, reuses K/V rows of prompts seen before.

    Without one, each request runs on a private pool just big enough for it, and nothing is reused.
    """

    def __init__(self, model, tokenizer, prefix_cache: PrefixCache | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        self._server = self._new_server(pool_tokens=None) if prefix_cache is not None else None

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids for a prompt given as text, ids, chat messages, or segments (see `request.prompt_ids`)."""
        return prompt_ids(self.tokenizer, prompt)

    def generate(self, prompt: Prompt, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, tenant: Hashable = None, stop_at_eos: bool = True) -> GenerationResult:
        """Generate up to `max_new_tokens` after `prompt`, reusing and then extending the prefix cache.

        Everything is checked before the cache is touched, so a refused request changes nothing.
        """
        ids = check_request(self.model, self.prompt_ids(prompt), max_new_tokens)
        server = self._server_for(request_rows(len(ids), max_new_tokens))
        request = server.submit(ids, max_new_tokens, temperature, top_p, seed, tenant, stop_at_eos)
        return server.run_until_done()[request]

    def _server_for(self, rows: int) -> Server:
        """The server to run a request of `rows` K/V rows on: the prefix cache's, or a private pool that fits it."""
        if self.prefix_cache is None and (self._server is None or self._server.pool.num_pages * self._server.pool.page_size < rows):
            self._server = self._new_server(pool_tokens=-(-rows // 256) * 256)
        return self._server

    def _new_server(self, pool_tokens: int | None) -> Server:
        # The whole prompt in one step, as a single request would be run.
        return Server(self.model, self.tokenizer, self.prefix_cache, max_running=1,
                      max_batch_tokens=self.model.config.max_position_embeddings, pool_tokens=pool_tokens)
