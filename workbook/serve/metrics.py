"""What `/metrics` shows, in Prometheus' text format (prometheus_client, one registry per endpoint).

Every value is written by the thread that owns the `Server` (see `loop`), right after the step or
command that changed it, so nothing here reads the server from another thread.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..server import Server
from .protocol import Counts

# Seconds: from a millisecond (a decode step of the tiny model) to a minute (a long queue).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters, gauges and histograms of one endpoint."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("workbook_requests", "Requests ended, by how they ended "
                                "(stop, length, cancelled: the client left, failed: the server dropped it)",
                                ["outcome"], registry=r)
        self.rejected = Counter("workbook_requests_rejected", "Requests refused before they ran, by HTTP status",
                                ["status"], registry=r)
        self.prompt_tokens = Counter("workbook_prompt_tokens", "Prompt tokens of requests that ran", registry=r)
        self.cached_tokens = Counter("workbook_cached_tokens",
                                     "Prompt tokens whose K/V rows were loaded from the prefix cache", registry=r)
        self.completion_tokens = Counter("workbook_completion_tokens", "Tokens generated", registry=r)
        self.hit_rate = Gauge("workbook_prefix_cache_hit_rate",
                              "Prefix cache hit tokens / queried tokens since start, as vLLM reports it", registry=r)
        self.pages_in_use = Gauge("workbook_pages_in_use", "KV pool pages held by requests or the prefix cache",
                                  registry=r)
        self.pages_shared = Gauge("workbook_pages_shared", "KV pool pages with more than one holder", registry=r)
        self.tree_pages = Gauge("workbook_prefix_cache_pages", "KV pool pages the prefix cache's tree holds",
                                registry=r)
        self.pages_total = Gauge("workbook_pages_total", "KV pool pages in all", registry=r)
        self.waiting = Gauge("workbook_requests_waiting", "Requests queued in the server", registry=r)
        self.running = Gauge("workbook_requests_running", "Requests in the running batch", registry=r)
        self.ttft = Histogram("workbook_time_to_first_token_seconds",
                              "From submission to the server until the first token is chosen",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.inter_token = Histogram("workbook_inter_token_seconds", "Between consecutive tokens of a request",
                                     buckets=LATENCY_BUCKETS, registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def tokens_chosen(self, request, seen: int) -> None:
        """Time the tokens `request` chose since it had `seen` of them."""
        times = request.token_at
        if seen == 0 and times:
            self.ttft.observe(times[0] - request.submitted_at)
        for i in range(max(seen, 1), len(times)):
            self.inter_token.observe(times[i] - times[i - 1])

    def ended(self, outcome: str, counts: Counts) -> None:
        self.requests.labels(outcome).inc()
        self.prompt_tokens.inc(counts.prompt_tokens)
        self.completion_tokens.inc(counts.completion_tokens)
        self.cached_tokens.inc(counts.cached_tokens)

    def pool(self, server: Server) -> None:
        """The pool and queues as they are now."""
        pool, cache = server.pool, server.prefix_cache
        self.pages_in_use.set(pool.pages_in_use)
        self.pages_shared.set(pool.pages_shared)
        self.pages_total.set(pool.num_pages)
        self.tree_pages.set(cache.tree_pages() if cache else 0)
        self.hit_rate.set(cache.stats().hit_rate if cache else 0.0)
        self.waiting.set(len(server.waiting))
        self.running.set(len(server.running))
