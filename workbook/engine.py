"""One request at a time, with an optional prefix cache, reporting usage and timings the way providers do.

`Engine` is the one-request case of `Server`: the same paged pool, K/V manager, scheduler and
forward pass, so there is one code path for K/V rows whether one request runs or thirty-two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Hashable

from .page_pool import pages_for_rows
from .prefix_cache import PrefixCache
from .request import GenerationResult, Prompt, check_request, prompt_ids, request_rows
from .sampling import SamplingParams, sampling_params
from .server import Server

if TYPE_CHECKING:
    from .speculative import Speculation

POOL_STEP = 256  # rows; a private pool grows in steps of this many rows, so requests of similar length reuse it


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

    def generate(self, prompt: Prompt, params: SamplingParams | None = None, *, tenant: Hashable = None,
                 speculation: Speculation | None = None, **settings) -> GenerationResult:
        """Generate after `prompt`, reusing and then extending the prefix cache.

        Sampling settings come as a `SamplingParams` or by name (max_new_tokens=16, temperature=0.8, ...);
        `speculation` (a `workbook.speculative.Speculation`) drafts and verifies k tokens a step.
        Everything is checked (once) before the cache is touched, so a refused request changes nothing.
        """
        params = sampling_params(params, settings)
        ids = check_request(self.model, self.prompt_ids(prompt), params)
        server = self._server_for(request_rows(len(ids), params.max_new_tokens))
        request = server._enqueue(ids, params, tenant, speculation)
        return server.run_until_done()[request]

    def _server_for(self, rows: int) -> Server:
        """The server to run a request of `rows` K/V rows on: the prefix cache's, or a private pool that fits it."""
        if self.prefix_cache is None and (self._server is None or self._server.pool.capacity_tokens < rows):
            self._server = self._new_server(pool_tokens=pages_for_rows(rows, POOL_STEP) * POOL_STEP)
        return self._server

    def _new_server(self, pool_tokens: int | None) -> Server:
        # The whole prompt in one step, as a single request would be run.
        return Server(self.model, self.tokenizer, self.prefix_cache, max_running=1,
                      max_batch_tokens=self.model.config.max_position_embeddings, pool_tokens=pool_tokens)
