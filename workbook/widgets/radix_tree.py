"""The prefix cache's radix tree, drawn as a plotly icicle while batches of requests fill a small budget.

Several users of two tenants send questions behind a few shared system prompts. Each box is one
tree node: a run of whole pages of tokens whose K/V rows sit in the pool. Its height is how many
cached prompts run through it; its label a few decoded tokens, the span length, hits, last access
and whether a running request has it locked. When the budget is full, least recently used unlocked leaves
are evicted; "Show evictions" draws them back as grey ghosts where they used to hang.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import ipywidgets as W
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from ..engine import Engine
from ..lessons.scenarios import QUESTIONS, SYSTEM_PROMPTS, USERS, User
from ..page_pool import PagePool
from ..prefix_cache import CacheStats, NodeView, PrefixCache
from .style import ErrorBox, legend_html

GHOST = "#BBBBBB"  # evicted nodes, drawn only while "Show evictions" is on
_MARKER = re.compile(r"<\|([a-z_]+)\|>")  # the chat format's special tokens, e.g. <|user|>
ROLES = ("system", "user", "assistant", "tool")
_RAMP = sample_colorscale("Cividis", [1.0 - 0.85 * i / 10 for i in range(11)])  # light (few hits) to dark (many)


@dataclass
class SentRequest:
    user: str
    tenant: str
    app: str
    question: str
    prompt_tokens: int
    loaded: int
    written: int


@dataclass
class Eviction:
    """A node that left the tree, remembered with where it hung so it can be drawn as a ghost."""

    node: NodeView
    attach_to: int | None  # the nearest ancestor still cached (None: the tenant's root)
    batch: int


@dataclass
class RadixTreeState:
    batches: int = 0
    requests: list[SentRequest] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    show_evictions: bool = False
    pinned: bool = False  # a long-running request holds a lock on the first user's prompt
    stats: CacheStats | None = None
    error: str = ""

    @property
    def last_batch_evictions(self) -> list[Eviction]:
        return [e for e in self.evictions if e.batch == self.batches]


def snippet(tokenizer, tokens: tuple[int, ...], skip: int = 0, width: int = 26) -> str:
    """A few decoded tokens for a node label, from token `skip` on; a role marker reads "▸user:", whitespace one space."""
    text = _readable(tokenizer.decode(tokens[skip:skip + 12]))
    if skip and _readable(tokenizer.decode(tokens[:skip])):
        text = "…" + text
    return text if len(text) <= width else text[:width - 1] + "…"


def _readable(text: str) -> str:
    text = _MARKER.sub(lambda m: f" ▸{m.group(1)}: " if m.group(1) in ROLES else " ", text)
    return " ".join(text.split())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def branch_points(nodes: list[NodeView]) -> dict[int, int]:
    """For each node, how many leading tokens it shares with every sibling: its label starts near where it differs."""
    siblings: dict[tuple, list[NodeView]] = {}
    for v in nodes:
        siblings.setdefault((v.tenant, v.parent_id), []).append(v)
    shared = {}
    for group in siblings.values():
        n = 0
        if len(group) > 1:
            while all(len(v.tokens) > n and v.tokens[n] == group[0].tokens[n] for v in group):
                n += 1
        for v in group:
            shared[v.id] = n - 2 if n > 6 else 0  # keep two tokens of context before the difference
    return shared


class RadixTreeView:
    """Send batches of requests through a small prefix cache and watch its radix tree grow, share and evict."""

    def __init__(self, model, tokenizer, *, capacity_tokens: int = 384, page_size: int = 8, batch_size: int = 4,
                 max_new_tokens: int = 1, system_prompts: dict[str, str] = SYSTEM_PROMPTS,
                 users: list[User] = USERS, questions: dict[str, list[str]] = QUESTIONS):
        self.tokenizer = tokenizer
        self.system_prompts, self.users, self.questions = system_prompts, users, questions
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.cache = PrefixCache(PagePool.for_tokens(capacity_tokens, page_size))
        self.engine = Engine(model, tokenizer, self.cache)
        self.state = RadixTreeState(stats=self.cache.stats())
        self._held = None  # the deepest node a held-open request has locked (with its ancestors)
        self._build()
        self._redraw()

    # ----- actions ------------------------------------------------------------------------------

    def send_batch(self) -> list[SentRequest]:
        """Send the next `batch_size` requests, round-robin over the users, recording what was evicted."""
        s = self.state
        s.batches += 1
        sent = []
        for _ in range(self.batch_size):
            n = len(s.requests)
            user = self.users[n % len(self.users)]
            asked = self.questions[user.app]
            question = asked[(n // len(self.users)) % len(asked)]
            before = {v.id: v for v in self.cache.nodes()}
            try:
                result = self.engine.generate(self.messages(user, question), max_new_tokens=self.max_new_tokens,
                                              tenant=user.tenant)
            except ValueError as error:  # e.g. a budget too small for one prompt; the cache is left as it was
                s.error = str(error)
                break
            s.error = ""
            self._remember_evictions(before)
            record = SentRequest(user.name, user.tenant, user.app, question, len(result.prompt_ids),
                                 result.usage.cache_read_tokens, result.usage.cache_write_tokens)
            s.requests.append(record)
            sent.append(record)
        self._redraw()
        return sent

    def set_show_evictions(self, show: bool) -> None:
        self.state.show_evictions = bool(show)
        self._redraw()

    def set_pinned(self, pinned: bool) -> None:
        """Pin (or release) the first user's system prompt, as a request that is still running would."""
        if pinned and self._held is None:
            user = self.users[0]
            ids = self.engine.prompt_ids(self.messages(user, self.questions[user.app][0]))
            match = self.cache.match(ids, user.tenant)
            if match.node is None:
                self.state.error = f"Nothing of {user.name}'s prompt is cached yet: send a batch first, then hold it."
                self.pin_toggle.value = False
                self._redraw()
                return
            self._held = match.node
            self.cache.lock(self._held)
            self.state.error = ""
        elif not pinned and self._held is not None:
            self.cache.unlock(self._held)
            self._held = None
        self.state.pinned = self._held is not None
        self._redraw()

    def messages(self, user: User, question: str) -> list[dict]:
        return [{"role": "system", "content": self.system_prompts[user.app]}, {"role": "user", "content": question}]

    def _remember_evictions(self, before: dict[int, NodeView]) -> None:
        now = {v.id for v in self.cache.nodes()}
        for view in before.values():
            if view.id in now:
                continue
            parent = view.parent_id
            while parent is not None and parent not in now:  # its parent may have gone in the same request
                parent = before[parent].parent_id if parent in before else None
            self.state.evictions.append(Eviction(view, parent, self.state.batches))

    # ----- the view -----------------------------------------------------------------------------

    def _build(self) -> None:
        wide = W.Layout(width="auto")
        self.send_button = W.Button(description="Send a batch", tooltip=f"{self.batch_size} requests from several users",
                                    layout=wide)
        self.send_button.on_click(lambda _: self.send_batch())
        self.evictions_toggle = W.ToggleButton(description="Show evictions", tooltip="Draw evicted nodes as grey ghosts",
                                               layout=wide)
        self.evictions_toggle.observe(lambda change: self.set_show_evictions(change["new"]), names="value")
        self.pin_toggle = W.ToggleButton(description="Hold a request open", layout=wide,
                                         tooltip=f"Lock {self.users[0].name}'s system prompt, as a running request does")
        self.pin_toggle.observe(lambda change: self.set_pinned(change["new"]), names="value")
        self.errors = ErrorBox()
        self.stats_html = W.HTML()
        self.evictions_html = W.HTML()
        self.figure = go.FigureWidget(go.Icicle(textinfo="label", tiling={"orientation": "h"},
                                                hovertemplate="%{customdata}<extra></extra>", sort=False))
        self.figure.update_layout(height=520, margin=dict(l=4, r=4, t=30, b=4),
                                  title=dict(text="Radix tree of the prefix cache", font=dict(size=14)))
        ramp = {"fewest hits": _hit_colour(0.0), "most hits": _hit_colour(1.0), "evicted (ghost)": GHOST}
        self.widget = W.VBox([
            W.HBox([self.send_button, self.evictions_toggle, self.pin_toggle]),
            self.errors.widget, self.stats_html,
            W.HTML(legend_html(ramp) + "<div>Each box: a few of its tokens, its length, hits, last access; "
                   "LOCKED marks a node a running request holds.</div>"),
            self.figure, self.evictions_html,
        ])

    def _redraw(self) -> None:
        s = self.state
        s.stats = self.cache.stats()
        if s.error:
            self.errors.show(ValueError(s.error))
        else:
            self.errors.clear()
        self.stats_html.value = self._stats_html()
        self.evictions_html.value = self._evictions_html() if s.show_evictions else ""
        pages = f"{s.stats.pages_in_use} of {s.stats.pages_total} pages in use"
        trace = tree_trace(self.tokenizer, self.cache.nodes(), s.last_batch_evictions if s.show_evictions else [], pages)
        with self.figure.batch_update():
            for name, value in trace.items():
                setattr(self.figure.data[0], name, value)

    def _stats_html(self) -> str:
        st = self.state.stats
        cells = [("requests", len(self.state.requests)), ("hit rate", f"{st.hit_rate:.0%}"),
                 ("hit tokens", f"{st.hit_tokens:,} of {st.queried_tokens:,}"),
                 ("evicted", f"{st.evictions} nodes ({st.evicted_tokens:,} tokens)"),
                 ("pages in use", f"{st.pages_in_use} of {st.pages_total} ({st.bytes_in_use / 1024:,.0f} KiB)")]
        return ('<div class="wb-radix-stats">' + "".join(
            f'<span data-name="{html.escape(k)}" style="display:inline-block;margin-right:16px"><b>{html.escape(str(v))}</b> '
            f"{html.escape(k)}</span>" for k, v in cells) + "</div>")

    def _evictions_html(self) -> str:
        gone = sorted(self.state.last_batch_evictions, key=lambda e: e.node.last_access)
        if not gone:
            return "<div>The last batch evicted nothing.</div>"
        items = "".join(
            f"<li>{html.escape(snippet(self.tokenizer, e.node.tokens))} ({len(e.node.tokens)} tokens, tenant "
            f"{html.escape(str(e.node.tenant))}, last used at t={e.node.last_access}, {_plural(e.node.hits, 'hit')})</li>"
            for e in gone)
        return f"<div>The last batch evicted {len(gone)} nodes, least recently used first:<ul>{items}</ul></div>"


def tree_trace(tokenizer, nodes: list[NodeView], ghosts: list[Eviction], pages: str = "") -> dict:
    """Icicle data: the pool, one box per tenant, one per node and one per ghost; a box's height counts its leaves."""
    boxes = []  # (id, parent, label, colour, hover)

    def add(*box):
        boxes.append(box)

    add("cache", "", f"prefix cache<br>{pages}", "#FFFFFF", f"the whole pool: {pages}")
    for tenant in dict.fromkeys([v.tenant for v in nodes] + [g.node.tenant for g in ghosts]):
        add(f"tenant:{tenant}", "cache", f"tenant {tenant}", "#FFFFFF", f"tenant {tenant}: its own subtree, never shared")
    most = max((v.hits for v in nodes), default=0) or 1
    skip = branch_points(nodes)
    for v in nodes:
        lock = " · LOCKED" if v.locked else ""
        add(f"node:{v.id}", f"node:{v.parent_id}" if v.parent_id is not None else f"tenant:{v.tenant}",
            f"{html.escape(snippet(tokenizer, v.tokens, skip[v.id]))}<br>{len(v.tokens)} tok · "
            f"{_plural(v.hits, 'hit')} · t={v.last_access}{lock}",
            _hit_colour(v.hits / most),
            f"{len(v.tokens)} tokens from position {v.depth_tokens}, {_plural(v.hits, 'hit')}, last used t={v.last_access}"
            + (", locked by a running request" if v.locked else ""))
    alive, shown = {v.id for v in nodes}, {g.node.id for g in ghosts}
    for g in ghosts:
        add(f"ghost:{g.node.id}", _ghost_parent(g, alive, shown),
            f"evicted: {html.escape(snippet(tokenizer, g.node.tokens))}<br>{len(g.node.tokens)} tok", GHOST,
            f"evicted in batch {g.batch}: {len(g.node.tokens)} tokens, last used t={g.node.last_access}")
    ids, parents, labels, colours, hover = (list(column) for column in zip(*boxes))
    return dict(ids=ids, parents=parents, labels=labels, customdata=hover,
                marker=dict(colors=colours, line=dict(color="#333333", width=1)),
                insidetextfont=dict(color=[_text_on(c) for c in colours]))


def _ghost_parent(ghost: Eviction, alive: set[int], shown: set[int]) -> str:
    """Hang a ghost where it was: under its parent if still cached or drawn as a ghost, else as near as known."""
    parent = ghost.node.parent_id
    if parent in alive:
        return f"node:{parent}"
    if parent in shown:
        return f"ghost:{parent}"
    if ghost.attach_to in alive:
        return f"node:{ghost.attach_to}"
    return f"tenant:{ghost.node.tenant}"


def _hit_colour(share: float) -> str:
    """Cividis (readable with every common colour-vision deficiency), light for few hits, dark for many."""
    return _RAMP[round(10 * min(max(share, 0.0), 1.0))]


def _text_on(colour: str) -> str:
    """Black or white text, whichever reads better on `colour` ("#RRGGBB" or "rgb(r, g, b)")."""
    if colour.startswith("#"):
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (float(x) for x in colour[colour.index("(") + 1:-1].split(","))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#FFFFFF"
