"""Lesson 9's picture of the KV pool: which pages are free, whose they are, and which are shared.

One small square per page of a server's pool, coloured by who holds it: nobody (free), one
request, only the prefix cache's tree (a cached prefix that no running request uses), or more
than one holder (shared: the tree and the requests that matched its prefix, or several
requests). The tooltip lists the holders. `run` shows what sharing buys: n requests that start
with one system prompt, after one step, with the prompt's pages shared through the prefix cache
or copied into every request.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W

from ..errors import EmptyInputError
from ..checks import check_whole
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..server import DEFAULT_PAGE_SIZE, Server, StepSnapshot
from .style import CHART_COLOURS, PROVENANCE_COLOURS, ErrorBox, legend_html

POOL_COLOURS = {"free": "#FFFFFF", "request": PROVENANCE_COLOURS["computed"], "cache": CHART_COLOURS[0],
                "shared": PROVENANCE_COLOURS["loaded"]}
LEGEND = {"free": "#FFFFFF", "one request (rows it computed)": POOL_COLOURS["request"],
          "prefix cache only (cached, no running request uses it)": POOL_COLOURS["cache"],
          "shared: more than one holder (the number in the square)": POOL_COLOURS["shared"]}
SUFFIX_TOKEN = 100  # request i's own part is SUFFIX_TOKEN + i repeated: the requests differ from their first own token


def pool_cells(holders: dict[int, list], num_pages: int) -> list[str]:
    """One word per page, from `Server.page_holders()`: "free", "request", "cache" (the tree only) or "shared"."""
    cells = []
    for page in range(num_pages):
        who = holders.get(page, [])
        cells.append("free" if not who else "shared" if len(who) > 1 else "cache" if who == ["cache"] else "request")
    return cells


@dataclass(frozen=True)
class PoolCounts:
    in_use: int  # pages with at least one holder
    shared: int  # pages with more than one holder
    without_sharing: int  # pages the same rows would take with no sharing: one copy per request, plus cache-only pages


def pool_counts(holders: dict[int, list]) -> PoolCounts:
    """The counts under the picture, from `Server.page_holders()`."""
    held = [who for who in holders.values() if who]
    return PoolCounts(in_use=len(held), shared=sum(len(who) > 1 for who in held),
                      without_sharing=sum(sum(h != "cache" for h in who) or 1 for who in held))


@dataclass
class PoolViewState:
    """What the picture shows: the pool's holders after a step, one word per page, and the counts."""

    holders: dict[int, list] = field(default_factory=dict)
    num_pages: int = 0
    cells: list[str] = field(default_factory=list)
    counts: PoolCounts = PoolCounts(0, 0, 0)
    snapshot: StepSnapshot | None = None  # the step drawn, when known
    running: int = 0  # requests running when drawn
    error: str = ""


class PoolOccupancyView:
    """The pages of a server's KV pool after a step; `run` compares n requests with and without a shared prefix."""

    def __init__(self, model, tokenizer, *, capacity_tokens: int = 2048):
        self.model, self.tokenizer, self.capacity_tokens = model, tokenizer, capacity_tokens
        self.state = PoolViewState()
        self._last: dict | None = None  # the last run's prompt settings, for the Run button
        self.errors = ErrorBox()
        self.requests_slider = W.IntSlider(value=4, min=1, max=64, description="requests", continuous_update=False)
        self.share_box = W.Checkbox(value=True, description="share the system prompt (prefix cache)", indent=False,
                                    layout=W.Layout(width="auto"))
        self.run_button = W.Button(description="Run one step", icon="play", disabled=True,
                                   tooltip="Submit the requests with the last system prompt and run one step")
        self.run_button.on_click(lambda _: self.run(**self._last, n_requests=self.requests_slider.value,
                                                    share=self.share_box.value))
        self.summary = W.HTML()
        self.picture = W.HTML()
        self.widget = W.VBox([W.HBox([self.requests_slider, self.share_box, self.run_button]), self.errors.widget,
                              self.summary, W.HTML(legend_html(LEGEND)), self.picture])

    def show(self, server: Server, snapshot: StepSnapshot | None = None) -> None:
        """Draw `server`'s pool as it stands now (after `snapshot`'s step, if given)."""
        holders = server.page_holders()
        self.state = PoolViewState(holders, server.pool.num_pages, pool_cells(holders, server.pool.num_pages),
                                   pool_counts(holders), snapshot, len(server.running))
        self.errors.clear()
        self._draw()

    def run(self, system_prompt_ids: list[int], n_requests: int = 4, suffix_tokens: int = 8, max_new_tokens: int = 4,
            share: bool = True) -> PoolViewState | None:
        """`n_requests` requests, each the system prompt plus `suffix_tokens` of its own, after one step together.

        With `share`, a server with a prefix cache first runs the system prompt alone (which caches its
        full pages), so the requests list those pages instead of computing their own. Without it, a server
        with no prefix cache and a pool of the same size computes the prompt into every request's pages.
        Bad input is shown in the view and returns None.
        """
        self._last = dict(system_prompt_ids=system_prompt_ids, suffix_tokens=suffix_tokens,
                          max_new_tokens=max_new_tokens)
        self.run_button.disabled = False
        try:
            check_whole("n_requests", n_requests, 1)
            check_whole("suffix_tokens", suffix_tokens, 1)
            self.requests_slider.value, self.share_box.value = n_requests, bool(share)  # the controls follow
            system = list(system_prompt_ids)
            if not system:
                raise EmptyInputError("The system prompt is empty: give at least one token.")
            prompts = [system + [SUFFIX_TOKEN + i] * suffix_tokens for i in range(n_requests)]
            # Room for every request in one step: the picture shows the pool, not the scheduler's token budget.
            settings = dict(max_running=n_requests, max_batch_tokens=sum(map(len, prompts)))
            if share:
                server = Server(self.model, self.tokenizer, PrefixCache(PagePool.for_tokens(self.capacity_tokens, DEFAULT_PAGE_SIZE)),
                                **settings)
                server.submit(system, max_new_tokens=1, stop_at_eos=False)
                server.run_until_done()
            else:
                server = Server(self.model, self.tokenizer, None, **settings, pool_tokens=self.capacity_tokens)
            for prompt in prompts:
                server.submit(prompt, max_new_tokens=max_new_tokens, stop_at_eos=False)
            snapshot = server.step()
        except ValueError as error:
            self.state = PoolViewState(error=str(error))
            self.errors.show(error)
            self._draw()
            return None
        self.show(server, snapshot)
        return self.state

    def _draw(self) -> None:
        s, c = self.state, self.state.counts
        if s.error:
            self.summary.value = self.picture.value = ""
            return
        after = f"After step {s.snapshot.step}: " if s.snapshot else ""
        waiting = f", {len(s.snapshot.waiting)} waiting for pages" if s.snapshot and s.snapshot.waiting else ""
        self.summary.value = (
            f"<div>{after}{s.running} request{'s' * (s.running != 1)} running{waiting}. <b>{c.in_use} of {s.num_pages} pages in use</b>, "
            f"{c.shared} shared; without sharing the same rows would take <b>{c.without_sharing} pages</b>.</div>")
        self.picture.value = pool_html(s.holders, s.cells)


def pool_html(holders: dict[int, list], cells: list[str]) -> str:
    """One square per page, in page order, with its holders in the tooltip (inline styles: survives an HTML export)."""
    squares = []
    for page, state in enumerate(cells):
        who = holders.get(page, [])
        names = ", ".join("cache" if h == "cache" else f"request {h}" for h in who) or "free"
        text = "#FFFFFF" if state == "shared" else "#000000"
        squares.append(f'<span class="wb-page-{state}" title="page {page}: {html.escape(names, quote=True)}" '
                       f'style="display:inline-block;width:16px;height:16px;margin:1px;border:1px solid #555;'
                       f'background:{POOL_COLOURS[state]};color:{text};font-size:9px;line-height:16px;'
                       f'text-align:center;vertical-align:top">{len(who) if state == "shared" else ""}</span>')
    return f'<div class="wb-pool" style="max-width:640px;line-height:0">{"".join(squares)}</div>'
