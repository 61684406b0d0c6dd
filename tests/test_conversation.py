"""Lesson 5's multi-turn chat: where each breakpoint strategy puts its markers, and what each provider bills for it."""

import pytest

import workbook
from workbook.lessons.conversation import EXCHANGES, STRATEGIES, Conversation, bill_strategies
from workbook.pricing import Usage, get_sheet
from workbook.providers import LOOKBACK_BLOCKS

SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"


def block(n, start):
    return tuple(range(start, start + n))


# A small chat written out in token ids. Turn 0 is a 1,100-token system prompt (over Sonnet's 1,024 minimum);
# request r adds turn r + 1. Request 2 adds the model's call and 20 tool results: 21 blocks, so the previous
# request's prompt ends more than the 20 boundaries back that a breakpoint looks at.
SMALL = Conversation(
    turns=(
        (block(1_100, 0),),
        (block(40, 2_000),),  # request 0 adds a 40-token user message
        (block(10, 3_000), block(60, 3_100)),  # request 1: the 10-token reply, a 60-token tool result
        (block(25, 4_000),) + tuple(block(5, 4_100 + 10 * i) for i in range(20)),  # request 2: 25 + 20 x 5 = 125
        (block(15, 5_000), block(30, 5_100)),  # request 3: 15 + 30 = 45
    ),
    at_s=(0.0, 5.0, 15.0, 90.0), output_tokens=(10, 25, 15, 50), pad=(9_999,))
PROMPTS = [1_140, 1_210, 1_335, 1_380]  # 1,100 + 40; + 10 + 60; + 125; + 45


def billed(strategy, key=SONNET):
    return [bill.usage for bill in bill_strategies(SMALL, [key], [strategy])[strategy][key]]


def test_prompt_arithmetic():
    assert [SMALL.turn_tokens(n) for n in range(5)] == [1_100, 40, 70, 125, 45]
    assert [SMALL.prompt_tokens(r) for r in range(4)] == PROMPTS and len(SMALL) == 4


def test_where_each_strategy_puts_its_breakpoints():
    def marks(strategy):
        return [[j for j, b in enumerate(r.blocks) if b.cache_control] for r in SMALL.requests(strategy)]

    # Request r holds 1 + (blocks of turns 1..r+1): 2, 4, 25 and 27 blocks.
    assert marks("none") == [[], [], [], []]
    assert marks("system") == [[0], [0], [0], [0]]
    assert marks("newest") == [[1], [3], [24], [26]]
    assert marks("two") == [[0, 1], [1, 3], [3, 24], [24, 26]]
    assert marks("whitespace") == [[2], [4], [25], [27]]  # the pad block, appended after the newest turn
    assert [r.blocks[-1].content for r in SMALL.requests("whitespace")] == [(9_999,)] * 4
    assert [(r.at_s, r.output_tokens) for r in SMALL.requests("two")] == list(zip(SMALL.at_s, SMALL.output_tokens))
    with pytest.raises(ValueError, match="Unknown strategy"):
        SMALL.requests("everywhere")


def test_a_breakpoint_on_the_system_prompt_reads_only_the_system_prompt():
    out = SMALL.output_tokens
    assert billed("system") == [Usage(input_tokens=40, cache_write_tokens=1_100, output_tokens=out[0])] + [
        Usage(input_tokens=p - 1_100, cache_read_tokens=1_100, output_tokens=o) for p, o in zip(PROMPTS[1:], out[1:])]


def test_a_breakpoint_on_the_newest_turn_writes_only_new_blocks_until_a_turn_outgrows_the_lookback():
    assert len(SMALL.turns[3]) >= LOOKBACK_BLOCKS
    usage = billed("newest")
    assert [(u.cache_read_tokens, u.cache_write_tokens, u.input_tokens) for u in usage] == [
        (0, 1_140, 0),  # the first request writes its whole prompt
        (1_140, 70, 0),  # reads the first prompt, writes the 70 new tokens
        (0, 1_335, 0),  # 21 new blocks: the previous prompt's end is out of reach, so the whole prompt is written
        (1_335, 45, 0),
    ]


def test_two_sliding_breakpoints_always_find_the_previous_prompt():
    usage = billed("two")
    assert [(u.cache_read_tokens, u.cache_write_tokens) for u in usage] == [
        (0, 1_140), (1_140, 70), (1_210, 125), (1_335, 45)]


def test_a_pad_that_moves_rewrites_the_whole_prompt_every_time():
    usage = billed("whitespace")
    assert [(u.cache_read_tokens, u.cache_write_tokens) for u in usage] == [(0, p + 1) for p in PROMPTS]


def test_openai_reads_the_same_whatever_the_breakpoints():
    reads = {s: [u.cache_read_tokens for u in billed(s, GPT)] for s in STRATEGIES}
    # 1,140 -> 1,024; 1,210 -> 1,152; 1,335 -> 1,280 (each request reads the previous prompt in 128-token steps).
    assert all(r == [0, 1_024, 1_152, 1_280] for r in reads.values())


# ----- the lesson's chat, with the shipped tokenizer ------------------------------------------------------


@pytest.fixture(scope="module")
def chat():
    tokenizer = workbook.load_tokenizer("tiny")
    return tokenizer, Conversation.encode(tokenizer)


def test_the_lesson_chat_has_the_shape_the_lesson_claims(chat):
    tokenizer, conversation = chat
    assert len(conversation) == len(EXCHANGES) == 12
    assert conversation.turn_tokens(0) >= get_sheet(SONNET).min_cacheable_tokens
    assert all(0 < b - a < 5 * 60 for a, b in zip(conversation.at_s, conversation.at_s[1:]))
    assert max(len(turn) for turn in conversation.turns) >= LOOKBACK_BLOCKS
    for r, exchange in enumerate(EXCHANGES[:-1]):  # each reply comes back as the first block of the next turn
        assert conversation.turns[r + 2][0] == tuple(tokenizer.encode(exchange.reply))
        assert conversation.output_tokens[r] == len(conversation.turns[r + 2][0])
    assert conversation.pad == tuple(tokenizer.encode(" "))


def test_the_lesson_chat_costs_in_the_order_the_lesson_says(chat):
    _, conversation = chat
    bills = bill_strategies(conversation, [SONNET])
    total = {s: sum(b.cost_usd for b in bills[s][SONNET]) for s in STRATEGIES}
    assert total["two"] < total["newest"] < total["system"] < total["none"] < total["whitespace"]
