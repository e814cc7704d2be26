"""lmsys-like: a SYNTHETIC workload shaped like LMSYS-Chat-1M first turns, with prompt text.

LMSYS-Chat-1M's licence forbids redistributing it, so this source ships something that
looks like it instead: generated English prompts from ten task categories, each with a
log-normal output length. It is not LMSYS data and says so in every trace it makes
(metadata `synthetic: true`). For the real dataset, use `--source lmsys --path ...`.

What is taken from published figures, and what is assumed
- Calibration targets, from the LMSYS-Chat-1M dataset card on Hugging Face
  (lmsys/lmsys-chat-1m, "Basic Statistics") and Table 1 of Zheng et al., "LMSYS-Chat-1M:
  A Large-Scale Real-World LLM Conversation Dataset", arXiv:2309.11998 (ICLR 2024):
  1,000,000 conversations, 25 models, 210,479 users, 154 languages, 2.0 turns per sample,
  69.5 tokens per prompt and 214.5 tokens per response on average. A secondary summary of
  the paper says Table 1 counts tokens with the Llama-2 tokenizer; we did not check the PDF.
  The averages are over all turns; we calibrate first turns to them (assumption), and we
  match them in the trace's tokenizer (cl100k by default), not Llama-2's.
- Topic mix: the paper clusters 100K English prompts (k-means, 20 clusters) and reports
  that "the majority of questions are related to coding and software" (its section 3.2).
  The ten categories and their shares below are our assumption, made in that spirit
  (coding the largest single category); the paper's per-cluster shares were not used.
- No published percentiles of LMSYS-Chat-1M prompt or response lengths were found, so
  the shape (log-normal per category, heavy-tailed mixture) is an assumption. So are the
  2,048-token output cap, English-only text (the real data has 154 languages) and the
  rules of thumb that turn a length request ("in 3 sentences", "a 500-word essay") into a
  median output length (traces/lmsys_like_text.py).

How a record is made
Record i is generated from its own generator, seeded by (--seed, i), so --offset/--limit
select disjoint records and record i has the same text and lengths in every build. Its
category is drawn by share; the category's template gives the prompt text and the median
and spread of the output length (an explicit length request in the prompt overrides
them; prompts that paste a passage or code scale them with its size). The output length
is drawn from log-normal(len_mu, len_sigma), rounded, and redrawn until it lies in
[1, 2048]; len_mu and len_sigma (natural log of tokens, before truncation) and the
category are written to the trace, so a predictor's error can be judged against the
best possible one. There is no response text: output_tokens is drawn, not counted, and
the `response` column is left out. Prompt tokens are counted from the text by the
trace's tokenizer, like any text source.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from traces.errors import TraceError
from traces.lmsys_like_text import (
    TOKENS_PER_WORD,
    WORDS,
    code,
    fill,
    pick,
    prose,
    roleplay_setup,
)
from traces.progress import Reporter
from traces.records import LoadStats, SourceOptions, SourceRecords
from traces.seeding import rng_for_record

GENERATOR_VERSION = 1  # bump when a change alters any record; it is written to the trace
OUTPUT_CAP_TOKENS = 2048  # assumption, see the module docstring
PUBLISHED_MEANS = {"prompt_tokens": 69.5, "output_tokens": 214.5}  # dataset card, Table 1
_REDRAWS = 100  # draws outside [1, cap] before giving up and clipping


@dataclass(frozen=True)
class Draft:
    """A prompt and the log-normal its output length is drawn from (median = e^mu)."""

    prompt: str
    median_tokens: float
    sigma: float


@dataclass(frozen=True)
class Category:
    """A kind of request: its share of the mix, and how one is drafted."""

    name: str
    share: float
    draft: Callable[[np.random.Generator], Draft]


@dataclass(frozen=True)
class Record:
    """One generated request."""

    index: int
    category: str
    prompt: str
    len_mu: float
    len_sigma: float
    output_tokens: int


# A template is (text, median output tokens, sigma); both None when the text asks for a
# length itself ({sentences}, {words}, ...). Medians and sigmas are tuned by hand so that
# the mixture's mean lands near PUBLISHED_MEANS (see examples/README.md for the check).
Template = tuple[str, float | None, float | None]


def _casual(rng: np.random.Generator, text: str) -> str:
    """Real prompts are often lower-case and unpunctuated: make some of ours so too."""
    if rng.random() < 0.25:
        text = text[0].lower() + text[1:]
    if rng.random() < 0.25 and text[-1] in ".?!":
        text = text[:-1]
    return text


def _from(rng: np.random.Generator, templates: tuple[Template, ...], **given: str) -> Draft:
    text, median, sigma = pick(rng, templates)
    prompt, asked = fill(rng, text, **given)
    if asked is not None:
        median, sigma = asked.median_tokens, asked.sigma
    return Draft(_casual(rng, prompt), median, sigma)


def _sized(
    rng: np.random.Generator,
    templates: tuple[tuple[str, float, float, float], ...],
    size_tokens: float,
    **given: str,
) -> Draft:
    """Templates (text, ratio, floor, sigma) around pasted text: median max(floor, ratio*size)."""
    text, ratio, floor, sigma = pick(rng, templates)
    prompt, asked = fill(rng, text, **given)
    if asked is not None:
        return Draft(prompt, asked.median_tokens, asked.sigma)
    return Draft(prompt, max(floor, ratio * size_tokens), sigma)


def _prose_tokens(text: str) -> float:
    return TOKENS_PER_WORD * len(text.split())


def _code_tokens(text: str) -> float:
    return len(text) / 3.5  # assumption: about 3.5 characters per token of code


_CHITCHAT: tuple[Template, ...] = (
    ("hi", 25, 0.8),
    ("hello", 25, 0.8),
    ("Hello, how are you?", 30, 0.7),
    ("who are you?", 40, 0.7),
    ("What is your name?", 25, 0.7),
    ("What can you do?", 110, 0.6),
    ("Are you better than ChatGPT?", 60, 0.7),
    ("tell me a joke", 35, 0.6),
    ("Tell me a joke about programmers.", 40, 0.6),
    ("good morning", 20, 0.7),
    ("I'm bored, talk to me", 50, 0.8),
    ("Do you have feelings?", 70, 0.6),
    ("what model are you?", 30, 0.7),
    ("thanks!", 15, 0.7),
    ("What day is it today?", 35, 0.6),
    ("How is the weather today in {place}?", 45, 0.6),
    ("Can you speak {language}?", 30, 0.7),
    ("hey there, what's up?", 25, 0.7),
)

_FACTUAL_QA: tuple[Template, ...] = (
    ("What is {topic}?", 170, 0.7),
    ("Explain {topic} in simple terms.", 200, 0.6),
    ("How does {topic} work?", 200, 0.6),
    ("Can you explain {topic} to a 10 year old?", 160, 0.6),
    ("What is the difference between {topic} and {topic2}?", 220, 0.6),
    ("Who was {person}?", 160, 0.6),
    ("Tell me about {person}.", 200, 0.6),
    ("What is the capital of {country}?", 20, 0.8),
    ("When did {event} happen?", 45, 0.8),
    ("Why is {topic} important?", 220, 0.6),
    ("What are the benefits of {thing}?", 230, 0.5),
    ("Explain {topic} in {sentences}.", None, None),
    ("Answer in one word: what is the capital of {country}?", 4, 0.5),
    ("Describe {topic} in {words}.", None, None),
    ("Is {thing} good for you?", 170, 0.6),
    ("What is the population of {country}?", 40, 0.7),
    ("What happened during {event}?", 200, 0.6),
)

_CODING: tuple[Template, ...] = (
    ("Write a {lang} function to {task}.", 230, 0.6),
    ("write {lang} code to {task}", 210, 0.6),
    ("How do I {task} in {lang}?", 250, 0.55),
    ("Can you give me an example of how to {task} using {lang}?", 260, 0.55),
    ("What is {concept} in {lang}? Give an example.", 250, 0.5),
    ("Write a {lang} script that can {task}. Add comments to the code.", 310, 0.5),
    ("I get this error: {error}\nHow do I fix it?", 190, 0.6),
    ("Explain {concept} in programming, in {sentences}.", None, None),
    ("{lang}: {task}", 220, 0.7),
    ("Write a complete {lang} program to {task}, with error handling and tests.", 490, 0.45),
)

_CODING_PASTED = (
    ("Fix the bug in this code:\n\n```{tag}\n{code}\n```", 1.0, 80, 0.4),
    ("Explain what this code does:\n```\n{code}\n```", 0.8, 100, 0.45),
    ("Why do I get {error} when I run this?\n\n{code}", 0.6, 120, 0.5),
    ("Convert this code to {lang}:\n```\n{code}\n```", 1.15, 60, 0.3),
    ("Write unit tests for the following function:\n\n{code}", 1.2, 150, 0.4),
    ("Can you make this code faster?\n{code}", 1.0, 100, 0.4),
    ("Add comments to this code\n{code}", 1.15, 80, 0.3),
    ("{code}\n\nWhat does this function return?", 0.3, 60, 0.6),
)

_CREATIVE: tuple[Template, ...] = (
    ("Write a story about {subject}.", 390, 0.45),
    ("write a short story about {subject}", 300, 0.45),
    ("Write a poem about {theme}.", 160, 0.45),
    ("Write a haiku about {theme}", 22, 0.3),
    ("Write a {word_count}-word essay on {topic}.", None, None),
    ("Write an essay about {topic}", 440, 0.4),
    ("Write song lyrics about {theme}", 240, 0.4),
    ("Write a limerick about {subject}", 50, 0.3),
    ("Write a {paragraphs}-paragraph story about {subject}.", None, None),
    ("Write a story of about {words} about {subject}.", None, None),
    ("Write a funny tweet about {theme}", 45, 0.5),
    ("Write a blog post about {thing}", 460, 0.4),
    ("Write a rap about {subject}", 280, 0.4),
    ("Continue this story: {opening}", 300, 0.5),
)

_ROLEPLAY: tuple[Template, ...] = (
    (
        "I want you to act as {persona}. Only reply in character and do not write "
        "explanations. My first message is: {line}",
        110,
        0.9,
    ),
    ("Let's play a game. You are {persona} and I am {user_role}. {line}", 130, 0.9),
    ("Pretend you are {persona}. {line}", 100, 0.9),
    (
        "You are {persona}. Stay in character no matter what.\n\n{setup}\n\nStart the scene.",
        170,
        0.8,
    ),
    ("[Roleplay] {setup}\n{name}: {line}", 140, 0.9),
    ("Act as {persona} and respond to me in {sentences}. {line}", None, None),
)

_LISTS: tuple[Template, ...] = (
    ("Give me {items} ideas for {occasion}.", None, None),
    ("List {items} {things}.", None, None),
    ("What are some good names for {business}?", 180, 0.5),
    ("Suggest {items} names for {business}.", None, None),
    ("Make a list of {things}", 250, 0.45),
    ("Brainstorm ways to {goal}", 280, 0.4),
    ("What are the pros and cons of {choice}?", 290, 0.4),
    ("top {items} {things}", None, None),
    ("How can I {goal}?", 260, 0.45),
    ("Give me a step-by-step plan to {goal}.", 330, 0.4),
)

_MATH: tuple[Template, ...] = (
    ("What is {a} * {b}?", 25, 0.9),
    ("Solve for x: {a}x + {b} = {c}", 140, 0.5),
    (
        "If {name} has {a} apples and gives {b} to {name2}, how many apples does {name} have left?",
        70,
        0.6,
    ),
    (
        "A train travels at {a} km/h for {b} hours. How far does it go? Explain step by step.",
        130,
        0.5,
    ),
    ("What is the derivative of x^{n} + {a}x?", 110, 0.5),
    ("Prove that the square root of 2 is irrational.", 320, 0.35),
    ("Is {big} a prime number?", 90, 0.7),
    ("{riddle}", 100, 0.7),
    ("{riddle} Think step by step.", 190, 0.5),
    ("What is {a}% of {big}?", 45, 0.7),
    ("Calculate the area of a circle with radius {a} cm.", 90, 0.5),
)

_BUSINESS: tuple[Template, ...] = (
    ("Write an email to {recipient} asking for {ask}.", 170, 0.4),
    ("Write a cover letter for a {job} position.", 300, 0.35),
    (
        "Give me an introduction over {words} for {company}, a {industry} company in {place}",
        None,
        None,
    ),
    (
        "Write an article about the applications of {chemical} {word_count} words in "
        "chemical industry",
        None,
        None,
    ),
    (
        "Write the safety information of {chemical} {word_count} words in chemical industry",
        None,
        None,
    ),
    ("Write a product description for {product}.", 160, 0.45),
    ("Write a LinkedIn post about {thing}", 200, 0.4),
    ("Draft a polite reply to a customer who {complaint}.", 150, 0.4),
    ("Write a resignation letter.", 180, 0.35),
    ("Write a short bio for a {job}.", 140, 0.45),
    ("Write a business plan for {business}.", 520, 0.35),
)

_SUMMARIZE = (
    ("Summarize the following text:\n\n{passage}", 0.25, 40, 0.45),
    ("Summarize this in {sentences}:\n{passage}", 0, 0, 0),
    ("TL;DR\n\n{passage}", 0.12, 25, 0.5),
    ("Rewrite the following paragraph to make it more formal:\n\n{passage}", 1.0, 20, 0.3),
    ("Correct the grammar and spelling in this text: {passage}", 1.0, 20, 0.25),
    ("Extract the key points from this text as a bulleted list:\n{passage}", 0.35, 40, 0.45),
    ("Paraphrase this: {passage}", 0.95, 20, 0.3),
    ("Make this shorter: {passage}", 0.55, 20, 0.35),
    ("Read the article below and tell me what was decided.\n\n{passage}", 0, 60, 0.7),
    ("Write a title for this article:\n{passage}", 0, 14, 0.5),
    ("{passage}\n\nSummarize the text above in {words}.", 0, 0, 0),
)

_TRANSLATE = (
    ("Translate to {language}: {text}", 1.5, 5, 0.25),
    ("Translate the following text into {language}:\n\n{text}", 1.5, 5, 0.25),
    ("Please translate into {language}:\n{text}", 1.5, 5, 0.25),
    ('{language} translation of: "{text}"', 1.5, 5, 0.3),
)


def _chitchat(rng: np.random.Generator) -> Draft:
    return _from(rng, _CHITCHAT)


def _factual_qa(rng: np.random.Generator) -> Draft:
    return _from(rng, _FACTUAL_QA)


def _coding(rng: np.random.Generator) -> Draft:
    if rng.random() < 0.55:
        return _from(rng, _CODING)
    tag, snippet = code(rng, median_lines=16, sigma=0.7)
    return _sized(rng, _CODING_PASTED, _code_tokens(snippet), code=snippet, tag=tag)


def _creative(rng: np.random.Generator) -> Draft:
    return _from(rng, _CREATIVE, opening=prose(rng, 3, 0.5))


def _roleplay(rng: np.random.Generator) -> Draft:
    return _from(rng, _ROLEPLAY, setup=roleplay_setup(rng))


def _lists(rng: np.random.Generator) -> Draft:
    return _from(rng, _LISTS)


def _math(rng: np.random.Generator) -> Draft:
    numbers = {
        "a": str(int(rng.integers(2, 100))),
        "b": str(int(rng.integers(2, 50))),
        "c": str(int(rng.integers(10, 500))),
        "n": str(int(rng.integers(2, 6))),
        "big": str(int(rng.integers(100, 100_000))),
    }
    return _from(rng, _MATH, **numbers)


def _business(rng: np.random.Generator) -> Draft:
    return _from(rng, _BUSINESS)


def _summarize(rng: np.random.Generator) -> Draft:
    passage = prose(rng, median_sentences=18, sigma=0.8, cap=150)
    return _sized(rng, _SUMMARIZE, _prose_tokens(passage), passage=passage)


def _translation(rng: np.random.Generator) -> Draft:
    u = rng.random()
    if u < 0.25:
        return _from(rng, (('How do you say "{short_phrase}" in {language}?', 30, 0.6),))
    if u < 0.45:
        n = int(rng.integers(1, 4))
        foreign = " ".join(pick(rng, WORDS["foreign"]) for _ in range(n))
        return Draft(f"Translate this into English: {foreign}", 14 * n + 5, 0.3)
    text = prose(rng, 4, 0.6, cap=30)
    return _sized(rng, _TRANSLATE, _prose_tokens(text), text=text)


# Shares are assumptions (see the module docstring); they sum to 1.
CATEGORIES: tuple[Category, ...] = (
    Category("coding", 0.20, _coding),
    Category("factual_qa", 0.17, _factual_qa),
    Category("chitchat", 0.10, _chitchat),
    Category("creative_writing", 0.10, _creative),
    Category("summarize_rewrite", 0.09, _summarize),
    Category("business_writing", 0.08, _business),
    Category("lists_brainstorm", 0.08, _lists),
    Category("roleplay", 0.07, _roleplay),
    Category("math_reasoning", 0.06, _math),
    Category("translation", 0.05, _translation),
)
_CUMULATIVE = np.cumsum([c.share for c in CATEGORIES])


def generate_record(seed: int, index: int) -> Record:
    """Record `index` of the workload under `seed`: always the same, whatever else is built."""
    rng = rng_for_record(seed, "lmsys-like", index)
    k = min(int(np.searchsorted(_CUMULATIVE, rng.random(), side="right")), len(CATEGORIES) - 1)
    category = CATEGORIES[k]
    draft = category.draft(rng)
    mu = math.log(draft.median_tokens)
    return Record(
        index=index,
        category=category.name,
        prompt=draft.prompt,
        len_mu=mu,
        len_sigma=draft.sigma,
        output_tokens=_truncated_lognormal(rng, mu, draft.sigma, OUTPUT_CAP_TOKENS),
    )


def _truncated_lognormal(rng: np.random.Generator, mu: float, sigma: float, cap: int) -> int:
    """A rounded log-normal draw, redrawn until it lies in [1, cap] (clipped after 100 tries)."""
    for _ in range(_REDRAWS):
        value = round(float(rng.lognormal(mu, sigma)))
        if 1 <= value <= cap:
            return value
    return int(min(max(value, 1), cap))


def load_lmsys_like(opts: SourceOptions, reporter: Reporter) -> SourceRecords:
    """Records --offset .. --offset + (--limit or -n) - 1 of the workload under --seed."""
    count = opts.limit if opts.limit is not None else opts.num_requests
    if count is None:
        raise TraceError("--source lmsys-like needs -n or --limit (how many records to generate)")
    records = []
    with reporter.task("generating lmsys-like records", count) as advance:
        for index in range(opts.offset, opts.offset + count):
            records.append(generate_record(opts.seed, index))
            if len(records) % 1000 == 0:
                advance(1000)
        advance(len(records) % 1000)
    stats = LoadStats("lmsys-like", details=generator_details())
    stats.rows_read = count
    return SourceRecords(
        source="lmsys-like",
        record_id=[str(r.index) for r in records],
        stats=stats,
        prompt=[r.prompt for r in records],
        output_tokens=np.array([r.output_tokens for r in records], dtype=np.int64),
        extra={
            "category": [r.category for r in records],
            "len_mu": np.array([r.len_mu for r in records], dtype=np.float64),
            "len_sigma": np.array([r.len_sigma for r in records], dtype=np.float64),
        },
    )


def generator_details() -> dict:
    """What the trace's metadata records about the generator: it is synthetic, and how."""
    return {
        "synthetic": True,
        "lmsys_like": {
            "generator_version": GENERATOR_VERSION,
            "note": "synthetic, LMSYS-Chat-1M-like; not LMSYS-Chat-1M data",
            "output_tokens": "drawn per record from log-normal(len_mu, len_sigma), rounded, "
            f"truncated to [1, {OUTPUT_CAP_TOKENS}]; not counted by the tokenizer",
            "output_cap_tokens": OUTPUT_CAP_TOKENS,
            "calibration_targets": {
                "mean_prompt_tokens": PUBLISHED_MEANS["prompt_tokens"],
                "mean_output_tokens": PUBLISHED_MEANS["output_tokens"],
                "reference": "LMSYS-Chat-1M dataset card; Zheng et al. 2023, arXiv:2309.11998, "
                "Table 1",
            },
            "category_shares": {c.name: c.share for c in CATEGORIES},
        },
    }
