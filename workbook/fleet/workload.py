"""A multi-tenant workload replayed through the router with the `openai` client, and what each replica saw.

Tenants are system prompts (several whole pages each, distinct from their first token); many users
ask short questions under them, in bursts sent at once. Hit rate comes from the answers' own
`usage.prompt_tokens_details.cached_tokens`; requests, tokens and pages per replica from each
replica's `/metrics` before and after the run.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import asdict, dataclass

import httpx
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

RULES = ["Answer in one short sentence.", "Prices are in euros and include tax.", "Never promise a delivery time.",
         "Be polite and precise.", "If you do not know, say so.", "Opening hours are seven to six.",
         "Refunds take five working days.", "Quote the order number back to the customer."]


def workload(run: str, *, tenants: int = 4, users: int = 32, requests: int = 64, burst: int = 8, repeat: int = 4,
             hot: float = 0.0, seed: int = 0) -> list[list[list[dict]]]:
    """Bursts of chat requests; `run` names the run, so two runs share no prefix (each starts cold).

    Each tenant's system prompt is the shop's rules in an order of its own, `repeat` times over (4: about 290
    tokens of the shipped tokenizer; 16: over 1,024, long enough for a provider's minimum). Tenants are equally
    popular, except that with `hot` > 0 each request goes to tenant 0 with that probability (else to any).
    """
    rng = random.Random(seed)
    systems = []
    for t in range(tenants):
        rules = rng.sample(RULES, len(RULES))
        systems.append(f"[{run}] You are the assistant of shop {t}. " + " ".join(rules * repeat))
    chats = [[{"role": "system", "content": systems[0 if hot and rng.random() < hot else rng.randrange(tenants)]},
              {"role": "user", "content": f"I am user {rng.randrange(users)}. Question {i}: when do you open?"}]
             for i in range(requests)]
    return [chats[i:i + burst] for i in range(0, requests, burst)]


def conversations(run: str, *, users: int = 16, turns: int = 6, seed: int = 0) -> list[list[list[dict]]]:
    """Chats that grow: burst t holds every user's turn t (in an order of its own), each request the user's whole
    conversation so far, so its prefix is the user's previous request and no one else's."""
    rng = random.Random(seed)
    chats = [[{"role": "system", "content": f"[{run}] You are the assistant of user {u}'s shop. Be brief."}]
             for u in range(users)]
    bursts = []
    for t in range(turns):
        for u, chat in enumerate(chats):
            if t:
                chat.append({"role": "assistant", "content": f"Noted: {rng.choice(RULES)}"})
            chat.append({"role": "user", "content": f"Turn {t}: user {u} asks about order {rng.randrange(10**6)}. "
                                                    + " ".join(rng.sample(RULES, 3))})
        bursts.append([list(chats[u]) for u in rng.sample(range(users), users)])
    return bursts


@dataclass(frozen=True)
class Answer:
    sent_at: float  # seconds since the epoch
    ttft_s: float
    prompt_tokens: int
    cached_tokens: int


async def _one(client: AsyncOpenAI, model: str, messages: list[dict], max_tokens: int) -> Answer:
    sent_at, start, first, usage = time.time(), time.perf_counter(), None, None
    stream = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                                  temperature=0, stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        usage = chunk.usage or usage
    return Answer(sent_at, (first or time.perf_counter()) - start, usage.prompt_tokens,
                  usage.prompt_tokens_details.cached_tokens)


async def replay(base_url: str, model: str, bursts: list[list[list[dict]]], max_tokens: int = 4) -> list[Answer]:
    """Send each burst's requests at once, one burst after another; every answer streamed, usage included."""
    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=120)
    answers = []
    async with client:
        for burst in bursts:
            answers += await asyncio.gather(*(_one(client, model, m, max_tokens) for m in burst))
    return answers


def request_log(model: str, bursts: list[list[list[dict]]], answers: list[Answer]) -> list[dict]:
    """The run as a Chat Completions request log (one dict per request, in the order sent), each with the usage
    its answer reported: what `workbook.doctor` reads."""
    chats = [messages for burst in bursts for messages in burst]
    return [{"timestamp": a.sent_at, "model": model, "messages": m,
             "usage": {"prompt_tokens": a.prompt_tokens, "prompt_tokens_details": {"cached_tokens": a.cached_tokens}}}
            for m, a in zip(chats, answers, strict=True)]


def scrape(url: str) -> dict[str, float]:
    """A replica's counters and gauges that the report needs, from its `/metrics`."""
    wanted = {"workbook_requests_total": "requests", "workbook_prompt_tokens_total": "prompt_tokens",
              "workbook_cached_tokens_total": "cached_tokens", "workbook_pages_in_use": "pages_in_use"}
    values = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in wanted:
                values[wanted[sample.name]] += sample.value
    return values


@dataclass(frozen=True)
class ReplicaStats:
    url: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    pages_in_use: int

    @property
    def hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True)
class PolicyReport:
    policy: str
    requests: int
    hit_rate: float  # cached / prompt tokens over every answer's usage
    ttft_p50_s: float
    ttft_p99_s: float
    replicas: list[ReplicaStats]

    def to_dict(self) -> dict:
        return {**asdict(self), "replicas": [dict(asdict(r), hit_rate=r.hit_rate) for r in self.replicas]}

    def lines(self) -> list[str]:
        out = [f"{self.policy}: {self.requests} requests, hit rate {self.hit_rate:.1%} (from usage), "
               f"TTFT p50 {self.ttft_p50_s * 1000:.0f} ms, p99 {self.ttft_p99_s * 1000:.0f} ms"]
        out += [f"  {r.url}: {r.requests} requests, hit rate {r.hit_rate:.1%}, {r.pages_in_use} pages in use"
                for r in self.replicas]
        return out


def p50_p99(ttfts: list[float]) -> tuple[float, float]:
    """The median and the 99th percentile (the nearest rank at or below it) of some times."""
    ttfts = sorted(ttfts)
    return statistics.median(ttfts), ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))]


def report(policy: str, answers: list[Answer], before: list[dict], after: list[dict], urls: list[str]) -> PolicyReport:
    replicas = [ReplicaStats(url, int(b["requests"] - a["requests"]), int(b["prompt_tokens"] - a["prompt_tokens"]),
                             int(b["cached_tokens"] - a["cached_tokens"]), int(b["pages_in_use"]))
                for url, a, b in zip(urls, before, after)]
    hit_rate = sum(a.cached_tokens for a in answers) / sum(a.prompt_tokens for a in answers)
    return PolicyReport(policy, len(answers), hit_rate, *p50_p99([a.ttft_s for a in answers]), replicas)
