# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 · Tokens: the same text always gives the same ids
#
# A language model never reads your text. Before anything else happens, a tokenizer cuts the
# text into pieces, **tokens**, and replaces each piece with an integer, its *token id*. Everything a
# prompt cache stores is keyed by those ids, so this is where caching starts: if two prompts
# begin with the same ids, a shared **prefix**, the work done on those ids can be shared; from the
# first id that differs, it cannot.
#
# By the end of this lesson you will be able to:
#
# - turn text into token ids and back, and show that the same text always gives the same ids;
# - explain why temperature and the other sampling settings cannot change those ids;
# - predict which small edits (whitespace, capitals, JSON key order, Unicode normalisation)
#   change the ids, and find the first token where two prompts part ways;
# - train a tiny byte-level BPE tokenizer yourself and read the merges it learned.
#
# Every claim below is checked by an `assert`: if a cell runs, the claim held on this machine.

# %%
from workbook.widgets.pipeline import show_pipeline
from workbook.widgets.style import use_workbook_palette

use_workbook_palette()  # every chart below: orange means computed, blue means loaded from a cache
show_pipeline(1)  # the whole pipeline, from text to the next token; this lesson's stages are yellow

# %%
import json
import unicodedata

from IPython.display import display

import workbook
from workbook.exercises import lesson1
from workbook.widgets.tokens import DivergenceView, TokenStrip, divergence_provenance

model_name = workbook.default_model()  # "tiny", unless $WORKBOOK_MODEL names another checkpoint
tokenizer = workbook.load_tokenizer(model_name)
model = workbook.load_model(model_name)
print(f"model {model_name!r}: {model.num_parameters():,} parameters, vocabulary of {tokenizer.vocab_size:,} tokens")

# %% [markdown]
# ## 1. Text in, ids out
#
# `encode` turns text into ids, `decode` turns ids back into text, and `token_texts` shows
# the piece of text each id stands for. Notice that a word usually carries the space in
# front of it: `" the"` with its space is one token, and a different one from `"the"`.

# %%
text = "May the force be with you"
ids = tokenizer.encode(text)
print(ids)
print(tokenizer.token_texts(ids))
assert tokenizer.decode(ids) == text  # nothing is lost on the way
assert len(tokenizer.encode(" the")) == 1 and tokenizer.encode(" the") != tokenizer.encode("the")  # one token, not "the"

strip = TokenStrip(tokenizer, title=text)
strip.show(ids)
display(strip.widget)

# %% [markdown]
# Each chip is one token: its text on top (a space is drawn as `␣`, a newline as `↵`) and its
# id underneath. A common word is often a single token; a rarer one is split into pieces.

# %% [markdown]
# ## 2. The same text gives the same ids, every time
#
# Encoding is a lookup followed by a fixed list of merge rules. There is no randomness in it
# and no model weights are involved, so the result cannot vary: not between calls, not
# between a tokenizer loaded now and one loaded tomorrow.

# %%
again = [tokenizer.encode(text) for _ in range(5)]
fresh = workbook.load_tokenizer(model_name).encode(text)  # a second, independently loaded tokenizer
assert all(run == ids for run in again) and fresh == ids
print("5 encodings and a freshly loaded tokenizer all give", ids)

# %% [markdown]
# ## 3. Temperature is not part of tokenization
#
# Temperature, top-p and the other sampling settings act on the model's *output*: the scores
# (logits) it gives each candidate next token. They are applied at the very last step, after
# the prompt has been tokenized and every layer has run. `encode` does not even take them as
# arguments. Let us generate twice from the same prompt, once greedily and once at a high
# temperature, and compare what happened to the prompt. (`workbook.Engine` runs one request end to end:
# tokenize, run the model, choose tokens. Lesson 4 opens it up.)

# %%
engine = workbook.Engine(model, tokenizer)
greedy = engine.generate(text, max_new_tokens=8, temperature=0.0)
hot = engine.generate(text, max_new_tokens=8, temperature=1.5, seed=1)

assert greedy.prompt_ids == hot.prompt_ids == ids  # same prompt ids...
assert (greedy.first_token_logits - hot.first_token_logits).abs().max() < 1e-4  # ...same scores for the next token
print("greedy:   ", repr(greedy.text))
print("temp 1.5: ", repr(hot.text))

# %% [markdown]
# The two continuations may differ: at temperature 1.5 the next token is *drawn* from the
# scores instead of taking the best one. But the prompt's ids, and the scores the model
# computed from them, are identical. So a cached prompt is just as reusable at temperature
# 0 as at 1.5.

# %% [markdown]
# ## 4. Small edits, different ids
#
# The flip side of determinism: the tokenizer sees bytes, not meaning. Each pair below means
# the same thing to a person, yet tokenizes differently. `workbook.first_divergence` finds
# the first token where two id lists differ, which is exactly where a prefix cache stops
# being able to help.

# %%
pairs = {
    "an extra space": ("You are a helpful assistant.", "You are a  helpful assistant."),
    "newline instead of space": ("Answer briefly. Be polite.", "Answer briefly.\nBe polite."),
    "lower-case first letter": ("You are a helpful assistant.", "you are a helpful assistant."),
    "JSON keys reordered": (json.dumps({"name": "Ada", "role": "admin"}), json.dumps({"role": "admin", "name": "Ada"})),
    "é as one or two code points": (unicodedata.normalize("NFC", "Café menu"),
                                    unicodedata.normalize("NFD", "Café menu")),
}

strips = []
for name, (a, b) in pairs.items():
    ids_a, ids_b = tokenizer.encode(a), tokenizer.encode(b)
    split = workbook.first_divergence(ids_a, ids_b)
    assert ids_a != ids_b and split is not None
    print(f"{name:28} {len(ids_a):2} vs {len(ids_b):2} tokens, first difference at token {split}")
    strip = TokenStrip(tokenizer, title=name)
    strip.show(ids_b, divergence_provenance(ids_a, ids_b))
    strips.append(strip.widget)
display(*strips)

# %% [markdown]
# In each strip, blue tokens (`loaded`) could still come from a cache of the first version.
# Everything after the first difference must be computed: wine tokens (`invalidated`) sit where
# the first version's cache held a row that the change threw away, orange ones (`computed`) go
# past the first version's end and were new work anyway. The position of the edit matters:
# a change in the very first token invalidates the whole prompt, a change near the end costs
# only what follows it. (This is an ideal cache that reuses any number of tokens; lesson 4's
# real one adds two rules: it stores tokens in whole groups of a fixed size, and it always computes the last one.)
#
# Two of these deserve a closer look, because the text *looks* identical:
#
# - The JSON strings hold equal data; only the order of the keys differs.
# - `"é"` can be written as one code point (U+00E9, the NFC form) or as `"e"` followed by a
#   combining accent (U+0301, the NFD form). Both display the same, but they are different
#   bytes. A byte-level tokenizer sees those bytes, and a character like `é` may even be split
#   across two tokens, shown here as escaped bytes such as `\xc3`.
#
# The cure for both is to make the text itself deterministic before it is tokenized:

# %%
a, b = pairs["JSON keys reordered"]
assert json.loads(a) == json.loads(b)  # equal data...
stable_a = json.dumps(json.loads(a), sort_keys=True)
stable_b = json.dumps(json.loads(b), sort_keys=True)
assert tokenizer.encode(stable_a) == tokenizer.encode(stable_b)  # ...and, once serialised the same way, equal ids

nfc, nfd = pairs["é as one or two code points"]
print(nfc, "vs", nfd, "|", len(nfc), "vs", len(nfd), "code points")
assert tokenizer.encode(unicodedata.normalize("NFC", nfd)) == tokenizer.encode(nfc)
print("sort_keys=True and NFC normalisation make equal content give equal ids")

# %% [markdown]
# ## 5. Try it: where do two prompts part ways?
#
# Box A is a prompt the cache has already seen; box B is a new one. The strips show B's
# tokens that could be loaded from A's cache and those that must be computed. Edit either
# box: add a date near the start, change a capital letter, swap two words, add a question
# at the end, and watch how many tokens survive.
#
# **Predict first:** if you put a date at the very start of box B, how many of its tokens can still
# be loaded from A's cache? Decide, then type it in.

# %%
system = "You are a support assistant for an online shop. Answer briefly and politely."
view = DivergenceView(tokenizer, system + " Where is my order?", system + " Can I get a refund?")
display(view.widget)

# %% [markdown]
# The view keeps its state in a plain Python object, so code can type into it too. Here a second
# copy is driven, so the one above stays as you left it. Putting a date at the start of the system
# prompt moves the first difference right to the front, while only the question changed before:

# %%
typed = DivergenceView(tokenizer, system + " Where is my order?", system + " Can I get a refund?")
shared_before = typed.state.reusable
typed.box_b.value = "Today is 2025-06-01. " + system + " Can I get a refund?"
print(f"different question only: {shared_before} tokens reusable; date in front: {typed.state.reusable}")
assert typed.state.reusable < shared_before and typed.state.divergence == 0

# %% [markdown]
# Stable content first, changing content last: that is the single most useful rule for
# getting the most out of a cache, and it follows directly from the ids.

# %% [markdown]
# ## 6. Where the ids come from: train a tiny BPE
#
# The tokenizer above is a *byte-level BPE* (byte-pair encoding). Training one is simple
# enough to run here:
#
# 1. Start with the 256 possible bytes as the vocabulary, so any text at all can be encoded.
# 2. Count every pair of neighbouring symbols in the training text.
# 3. Merge the most frequent pair into a new symbol, add it to the vocabulary, and repeat.
#
# The list of merges, in order, *is* the tokenizer. Encoding replays them, which is why it
# is deterministic. In the printed merges, `Ġ` stands for a space and `Ċ` for a newline
# (each byte is drawn as a printable character).

# %%
corpus = [
    "The cache keeps the keys and values of the tokens it has seen.",
    "The tokens of the prompt are the same every time the prompt is the same.",
    "When the prompt changes, the tokens after the change must be computed again.",
    "Keep the stable text at the start and the changing text at the end.",
] * 3

little = workbook.BPETokenizer.train(corpus, vocab_size=256 + 30)
for rank, line in enumerate(little.readable_merges(), start=1):
    print(f"{rank:2}. {line}")
assert little.merges == workbook.BPETokenizer.train(corpus, vocab_size=256 + 30).merges  # training is deterministic too

# %% [markdown]
# The first merge joins the most frequent pair in this text, a space and `t`; the second
# joins `h` and `e`; the third puts those together into ` the`, space included. Further down,
# ` prompt` and ` tokens` are built up piece by piece. More merges mean longer pieces, and so
# fewer tokens for the same sentence:

# %%
sentence = "Keep the stable text at the start."
counts = {}
for merges in (0, 5, 10, 20, 30):
    counts[merges] = len(workbook.BPETokenizer.train(corpus, vocab_size=256 + merges).encode(sentence))
    print(f"{merges:2} merges: {counts[merges]:2} tokens")
assert counts[0] == len(sentence.encode("utf-8"))  # no merges: one token per byte
assert list(counts.values()) == sorted(counts.values(), reverse=True) and counts[30] < counts[0]

emoji = "Thanks 🙂"
assert little.decode(little.encode(emoji)) == emoji  # bytes it never saw in training still round-trip
print(f"{emoji!r} -> {little.token_texts(little.encode(emoji))}")

# %% [markdown]
# A production tokenizer learns tens of thousands of merges from a huge corpus; the
# workbook's model uses a few thousand. The idea is the same, and what gets merged first
# tells you what the training text was like. The shipped tokenizer learned from chat
# transcripts full of indented JSON tool definitions, so its first merges are runs of
# spaces, quotes and colons:

# %%
if hasattr(tokenizer, "readable_merges"):  # our written-out BPE; other checkpoints may use another kind
    print("The workbook model's first merges:", tokenizer.readable_merges(8))

# %% [markdown]
# A real model's vocabulary, beside it: SmolLM2-135M-Instruct (Hugging Face's small chat model, which
# `make setup` installed as one GGUF file) learned its merges from a large general corpus. Our same
# `BPETokenizer` reads them from the file, so the two tokenizers below run the same code; only the
# merges differ.

# %%
real_tokenizer = workbook.load_tokenizer("smollm2-135m-instruct")
print(f"shipped: {tokenizer.vocab_size:,} tokens; SmolLM2: {real_tokenizer.vocab_size:,} tokens, "
      f"{len(real_tokenizer.merges):,} merges, the first {real_tokenizer.readable_merges(4)}")
samples = [text, "The photosynthesis of chlorophyll", "Grüße aus München 🙂",
           "Where is my order A12345? It should have arrived on Monday."]
sizes = {}
for sample in samples:
    shipped_ids, real_ids = tokenizer.encode(sample), real_tokenizer.encode(sample)
    assert real_tokenizer.decode(real_ids) == sample  # the same round trip, with 49k tokens
    sizes[sample] = (len(shipped_ids), len(real_ids))
    print(f"{sample!r}\n  shipped {len(shipped_ids):2}: {tokenizer.token_texts(shipped_ids)}"
          f"\n  SmolLM2 {len(real_ids):2}: {real_tokenizer.token_texts(real_ids)}")
assert sum(real for _, real in sizes.values()) < sum(shipped for shipped, _ in sizes.values())
assert len(real_tokenizer.encode(" photosynthesis")) == 1 and len(real_tokenizer.encode(" 🙂")) == 1
assert real_tokenizer.token_texts(real_tokenizer.encode("12345")) == ["1", "2", "3", "4", "5"]
assert sizes[samples[3]][1] > sizes[samples[3]][0]  # the order number: more tokens with the bigger vocabulary

# %% [markdown]
# The larger vocabulary holds whole words the shipped one never saw often enough to merge (` photosynthesis`
# is one token there), and whole characters outside English (`ü`, `🙂`) where the shipped one falls back
# to single bytes. But look at the order number: SmolLM2 writes every digit as its own token, by design
# (its tokenizer splits numbers into digits before any merge), so `A12345` costs it more tokens, not fewer.
# Fewer tokens for the same text means less work for the model, and less to cache.

# %% [markdown]
# ## Check yourself
#
# Each exercise has an answer variable that starts as `None`. Put your answer in it and run
# the cell: the check says whether it is right and explains why. A wrong answer gets a hint
# first; a second wrong try, or adding `reveal=True` to the call, shows the worked answer.
# You may predict first and then use `tokenizer.encode` and `workbook.first_divergence` to
# find out.
#
# **Exercise 1.** A cache holds the first prompt. How many tokens at the start of the
# second prompt can be loaded from it?

# %%
cached_prompt = "You are a helpful assistant. Today is Monday. Answer briefly."
new_prompt = "You are a helpful assistant. Today is Tuesday. Answer briefly."
answer_1 = None  # a whole number of tokens
lesson1.check_reusable_tokens(tokenizer, cached_prompt, new_prompt, answer_1)

# %% [markdown]
# **Exercise 2.** Two requests share a long system prompt and differ in one way, listed
# below. Which of these differences stop the cached prefix from matching? Answer with a set
# of letters, e.g. `{"a", "d"}`.

# %%
for letter, (change, _, _) in lesson1.CACHE_BREAKERS.items():
    print(f"{letter}) {change}")

# %%
answer_2 = None  # a set of letters
lesson1.check_cache_breakers(answer_2)
