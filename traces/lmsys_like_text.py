"""Text pieces for the lmsys-like source: word lists, slot filling, filler prose and code.

Everything here draws from the record's own generator, so a record's text depends on
its seed alone. A template is a str.format string whose slots name a word list below,
a length request (`sentences`, `words`, `word_count`, `items`, `paragraphs`), or a
piece of text the caller passes in (`passage`, `code`, ...).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Rough conversions used to turn an explicit length request into a median output length.
# Assumptions (rules of thumb for English in BPE tokenizers), not measurements.
TOKENS_PER_WORD = 1.33
TOKENS_PER_SENTENCE = 24.0
TOKENS_PER_ITEM = 22.0
TOKENS_PER_PARAGRAPH = 95.0


def pick(rng: np.random.Generator, options: Sequence):
    """One element of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


@dataclass(frozen=True)
class LengthRequest:
    """An explicit length asked for in the prompt: the median output it implies, and spread."""

    median_tokens: float
    sigma: float


def _sentences(rng: np.random.Generator) -> tuple[str, LengthRequest]:
    n = int(rng.integers(1, 7))
    text = "one sentence" if n == 1 else f"{n} sentences"
    return text, LengthRequest(TOKENS_PER_SENTENCE * n + 4, 0.3)


_WORD_COUNTS = (50, 100, 100, 150, 150, 200, 200, 250, 300, 300, 400, 500, 500, 800, 1000)


def _words(rng: np.random.Generator) -> tuple[str, LengthRequest]:
    n = pick(rng, _WORD_COUNTS)
    return f"{n} words", LengthRequest(TOKENS_PER_WORD * n, 0.25)


def _word_count(rng: np.random.Generator) -> tuple[str, LengthRequest]:
    n = pick(rng, _WORD_COUNTS)
    return str(n), LengthRequest(TOKENS_PER_WORD * n, 0.25)


def _items(rng: np.random.Generator) -> tuple[str, LengthRequest]:
    n = pick(rng, (3, 5, 5, 5, 7, 10, 10, 10, 15, 20, 25))
    return str(n), LengthRequest(TOKENS_PER_ITEM * n + 15, 0.35)


def _paragraphs(rng: np.random.Generator) -> tuple[str, LengthRequest]:
    n = int(rng.integers(1, 6))
    return str(n), LengthRequest(TOKENS_PER_PARAGRAPH * n, 0.3)


LENGTH_SLOTS = {
    "sentences": _sentences,
    "words": _words,
    "word_count": _word_count,
    "items": _items,
    "paragraphs": _paragraphs,
}


def _list(text: str) -> tuple[str, ...]:
    """A word list written as one "a; b; c" string (compact, and stable under the formatter)."""
    return tuple(s.strip() for s in text.split(";"))


WORDS: dict[str, tuple[str, ...]] = {
    "topic": _list(
        "photosynthesis; the French Revolution; black holes; inflation; the immune system; "
        "machine learning; climate change; the Roman Empire; quantum computing; blockchain; "
        "the water cycle; volcanoes; vaccines; the stock market; renewable energy; "
        "the Great Wall of China; neural networks; plate tectonics; the Cold War; "
        "DNA replication; the theory of relativity; supply and demand; "
        "the Industrial Revolution; large language models; compound interest; the human heart; "
        "electric cars; the Silk Road; cryptocurrency; global warming; the Renaissance; "
        "nuclear fusion; the Big Bang; antibiotics; social media; the internet; democracy; "
        "artificial intelligence; the moon landing; evolution; cloud computing"
    ),
    "person": _list(
        "Albert Einstein; Cleopatra; Napoleon Bonaparte; Marie Curie; Nikola Tesla; "
        "Genghis Khan; Ada Lovelace; Abraham Lincoln; Confucius; Leonardo da Vinci; "
        "Isaac Newton; Mahatma Gandhi; Alan Turing; Frida Kahlo; Julius Caesar"
    ),
    "country": _list(
        "France; Japan; Brazil; Kenya; Canada; Australia; Egypt; Germany; India; Mexico; Norway; "
        "Vietnam; Argentina; Turkey; South Korea; Peru"
    ),
    "place": _list(
        "Shanghai; Texas; Bavaria; Gujarat; Ontario; Osaka; Lyon; Sao Paulo; Rotterdam; Jiangsu; "
        "Ohio; Catalonia; Busan; Chennai; Milan"
    ),
    "event": _list(
        "World War II; the fall of the Berlin Wall; the first moon landing; "
        "the signing of the Magna Carta; the Chernobyl disaster; "
        "the invention of the printing press; the first Olympic Games; the French Revolution; "
        "the 2008 financial crisis"
    ),
    "thing": _list(
        "drinking green tea; intermittent fasting; learning a second language; yoga; "
        "remote work; electric bikes; solar panels; meditation; reading every day; cold showers; "
        "a standing desk; open source software"
    ),
    "language": _list(
        "French; Spanish; German; Chinese; Japanese; Italian; Portuguese; Russian; Korean; "
        "Arabic; Dutch; Hindi"
    ),
    "lang": _list(
        "Python; Python; Python; JavaScript; JavaScript; Java; C++; SQL; Go; Rust; TypeScript; "
        "Bash; C#; PHP"
    ),
    "task": _list(
        "reverse a linked list; parse a CSV file; connect to a PostgreSQL database; "
        "sort a list of dictionaries by a key; read a JSON file; implement binary search; "
        "scrape the titles from a web page; train a linear regression model; "
        "send an HTTP POST request; merge two sorted arrays; check if a string is a palindrome; "
        "find duplicate files in a folder; resize all images in a directory; "
        "count word frequencies in a text file; validate an email address with a regex; "
        "build a simple REST API; read an Excel file and plot a column; "
        "remove duplicates from a list; compute the Fibonacci sequence; "
        "upload a file to an S3 bucket; create a login form; schedule a job every hour"
    ),
    "concept": _list(
        "a list comprehension; a closure; async/await; a pointer; a decorator; "
        "dependency injection; a generator; recursion; a race condition; a hash map; "
        "garbage collection; an interface; a mutex; polymorphism"
    ),
    "error": _list(
        "TypeError: 'NoneType' object is not subscriptable; IndexError: list index out of range; "
        "ModuleNotFoundError: No module named 'pandas'; Segmentation fault (core dumped); "
        "TypeError: undefined is not a function; java.lang.NullPointerException; KeyError: 'id'; "
        "ValueError: could not convert string to float: ''; RuntimeError: CUDA out of memory.; "
        "SyntaxError: unexpected EOF while parsing; "
        "ERROR 1064 (42000): You have an error in your SQL syntax; "
        "fatal: not a git repository (or any of the parent directories): .git"
    ),
    "subject": _list(
        "a dragon who is afraid of heights; a lonely robot on Mars; a detective in Paris; "
        "a cat who becomes mayor; two friends lost in a forest; a time traveler in ancient Rome; "
        "a young wizard who fails every exam; a ghost who haunts a library; "
        "a chef competing in a cooking contest; a girl who can talk to birds; "
        "the last tree on Earth; a soldier coming home after the war; "
        "a pirate searching for treasure; an AI that wants to be human; "
        "a small village during a snowstorm"
    ),
    "theme": _list(
        "the ocean at night; autumn leaves; friendship; love; the city in the rain; growing old; "
        "the stars; coffee; spring; loneliness; hope; my mother; the mountains; "
        "artificial intelligence; summer vacation"
    ),
    "persona": _list(
        "a medieval innkeeper; a pirate captain; a strict math teacher; Sherlock Holmes; "
        "a Linux terminal; a job interviewer for a software engineering position; "
        "a travel guide in Tokyo; a fitness coach; a stand-up comedian; a therapist; "
        "my girlfriend; a Dungeon Master; an English teacher who corrects my mistakes; "
        "a customer support agent for an airline; a fortune teller; a wise old wizard"
    ),
    "user_role": _list(
        "a traveler; a new student; a customer; a young knight; a journalist; a lost tourist; "
        "your apprentice; a detective"
    ),
    "occasion": _list(
        "a birthday party; a team-building event; a first date; a rainy weekend; "
        "a science fair project; a wedding speech; a small business; a YouTube channel; "
        "a podcast about history; a family dinner"
    ),
    "things": _list(
        "healthy snacks; books to read this summer; names for a golden retriever; "
        "tips to improve my sleep; ways to save money; interview questions for a data analyst; "
        "tourist attractions in Italy; marketing ideas for a bakery; hobbies to try; "
        "movies like Inception; questions to ask on a first date; exercises for back pain"
    ),
    "business": _list(
        "a coffee shop; a bakery; a mobile app for dog owners; a cleaning company; "
        "a tech startup; a bookstore; a fitness studio; an online clothing store"
    ),
    "goal": _list(
        "reduce stress at work; learn to code faster; get more followers on Instagram; "
        "make my apartment feel bigger; stay motivated while studying; "
        "improve customer retention; lose weight without a gym"
    ),
    "choice": _list(
        "renting versus buying a house; working from home; electric cars; nuclear power; "
        "studying abroad; using TypeScript instead of JavaScript; social media for teenagers"
    ),
    "recipient": _list(
        "my boss; a professor; my landlord; a client; the HR department; my team; a customer; "
        "a potential investor"
    ),
    "ask": _list(
        "a day off next Friday; an extension on the deadline; a meeting next week; "
        "a refund for a damaged product; feedback on my proposal; a salary review; "
        "the repair of the heating system"
    ),
    "job": _list(
        "data analyst; software engineer; marketing manager; nurse; teacher; graphic designer; "
        "project manager; sales representative"
    ),
    "company": _list(
        "Zhejiang Haisheng Chemical Co., Ltd.; NAME_1 Industries; Acme Polymers Inc.; "
        "Nordic Solvents AB; Shanghai Kinetic Materials; Delta Fine Chemicals; BlueRiver Pharma; "
        "Sunrise Coatings Ltd."
    ),
    "industry": _list("chemical; chemical; pharmaceutical; software; logistics; food"),
    "chemical": _list(
        "2-Chloro-5-nitropyridine; 4-Aminobenzoic acid; Sodium hypochlorite; Toluene; "
        "Ethylene glycol; 3-Bromopyridine; Acetonitrile; Benzyl alcohol; Titanium dioxide"
    ),
    "product": _list(
        "noise-cancelling headphones; a handmade leather wallet; an ergonomic office chair; "
        "a smart water bottle; organic green tea; a portable solar charger"
    ),
    "complaint": _list(
        "received the wrong order; waited two weeks for a refund; found the app confusing; "
        "was charged twice; had a bad experience with our delivery driver"
    ),
    "name": _list("NAME_1; NAME_2; Tom; Maria; Ali; Sarah; Ken; Lucy"),
    "short_phrase": _list(
        "good morning; where is the train station; I love you; thank you very much; "
        "how much does this cost; nice to meet you; I am hungry; happy birthday"
    ),
    "foreign": _list(
        "Je voudrais réserver une table pour deux personnes ce soir.; "
        "¿Dónde está la biblioteca más cercana?; Ich habe meinen Schlüssel im Büro vergessen.; "
        "Il tempo oggi è molto bello e vorrei fare una passeggiata.; "
        "Eu gostaria de aprender a tocar violão.; Мне нужно купить билет на поезд до Москвы.; "
        "今日はとても忙しい一日でした。; 我想学习如何用Python编写程序。"
    ),
    "line": _list(
        "Hello, who are you?; Tell me about yourself.; I need your help with something.; "
        "What should I do next?; ls -la; *walks into the room* Good evening.; "
        "Can you describe where we are?; *sits down at the table* What do you recommend?; "
        "Why are you looking at me like that?"
    ),
    "rule": _list(
        "Never break character; Describe your actions between asterisks; Do not mention that "
        "you are an AI; Stay in the setting at all times; Ask me questions to move the story on; "
        "Use old-fashioned language; Be sarcastic but friendly; Remember everything I tell you; "
        "Never decide what my character does"
    ),
    "riddle": _list(
        "I have two coins that add up to 30 cents and one of them is not a nickel. What are they?; "
        "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. "
        "How much does the ball cost?; "
        "If it takes 5 machines 5 minutes to make 5 widgets, "
        "how long would it take 100 machines to make 100 widgets?; "
        "Sally has 3 brothers. Each brother has 2 sisters. How many sisters does Sally have?; "
        "What is heavier, a kilogram of feathers or a kilogram of steel?"
    ),
}

_SUBJECTS = _list(
    "The committee; Our team; The city council; Researchers at the university; The company; "
    "Local residents; The new manager; Most students; The government; Several experts; "
    "The report; The engineers; Many customers; The author; The board of directors; Scientists"
)
_VERBS = _list(
    "announced; reviewed; discussed; criticized; supported; postponed; analyzed; described; "
    "questioned; approved; presented; welcomed; rejected; studied"
)
_OBJECTS = _list(
    "the annual budget; a plan to expand the public library; the results of the survey; "
    "new safety rules for the factory; the proposal for a bike lane; the quarterly sales figures; "
    "changes to the school schedule; the impact of rising prices on families; "
    "a program for young farmers; the effects of {topic}; recent research on {topic}; "
    "a new policy on remote work; the history of {topic}; the cost of the new bridge; "
    "a partnership with a company in {country}; the decline in tourism"
)
_TAILS = _list(
    "last week; after a long debate; on Monday; despite strong objections; in a public meeting; "
    "for the first time; earlier this year; without much explanation; because costs kept rising; "
    "in a detailed statement; at the end of the year"
)
_OPENERS = _list(
    "However,; In addition,; As a result,; Meanwhile,; According to the article,; "
    "At the same time,; For this reason,"
)


def fill(rng: np.random.Generator, template: str, **given: str) -> tuple[str, LengthRequest | None]:
    """Fill `template`'s slots: `given` text first, then length requests, then word lists.

    Returns the text and the length request it makes, if any (at most one per template).
    """
    values: dict[str, str] = {}
    request = None
    for _, slot, _, _ in string.Formatter().parse(template):
        if slot is None or slot in values:
            continue
        if slot in given:
            values[slot] = given[slot]
        elif slot in LENGTH_SLOTS:
            values[slot], request = LENGTH_SLOTS[slot](rng)
        else:
            values[slot] = str(pick(rng, WORDS[slot.rstrip("0123456789")]))
    return template.format(**values), request


def sentence(rng: np.random.Generator) -> str:
    """One plausible news-like sentence, 10 to 25 words."""
    subject, verb = pick(rng, _SUBJECTS), pick(rng, _VERBS)
    obj, _ = fill(rng, pick(rng, _OBJECTS))
    words = [subject, verb, obj]
    if rng.random() < 0.3:
        words[0] = subject[0].lower() + subject[1:]
        words.insert(0, pick(rng, _OPENERS))
    if rng.random() < 0.85:
        words.append(pick(rng, _TAILS))
    return " ".join(words) + "."


def prose(rng: np.random.Generator, median_sentences: float, sigma: float, cap: int = 150) -> str:
    """A passage of generated sentences, its length log-normal around `median_sentences`."""
    n = int(np.clip(round(rng.lognormal(math.log(median_sentences), sigma)), 1, cap))
    sentences = [sentence(rng) for _ in range(n)]
    per_paragraph = int(rng.integers(3, 7))
    paragraphs = [" ".join(sentences[i : i + per_paragraph]) for i in range(0, n, per_paragraph)]
    return "\n\n".join(paragraphs)


def roleplay_setup(rng: np.random.Generator) -> str:
    """A character sheet: who the model plays, numbered rules, and some background prose."""
    persona, _ = fill(rng, "{persona}")
    n_rules = int(rng.integers(2, 7))
    rules = [f"{i + 1}. {pick(rng, WORDS['rule'])}." for i in range(n_rules)]
    background = prose(rng, 7, 0.8, cap=60)
    return f"Character: {persona}\nRules:\n" + "\n".join(rules) + f"\nBackground: {background}"


_IDENTS = _list(
    "data; result; items; config; user; response; total; rows; values; records; buffer; path; "
    "count; text; scores"
)
_FUNCS = _list(
    "load_data; parse_row; fetch_user; compute_total; validate; send_request; normalize; "
    "process; update_cache; read_config; save_results; handle_event"
)
_ATTRS = ("name", "id", "value", "price", "status", "email", "created_at", "score")
_PY_LINES = (
    "    {a} = {f}({b})",
    "    if {a} is None:\n        return {b}",
    "    for item in {a}:\n        {b}.append(item.{attr})",
    "    {a} = [x.{attr} for x in {b} if x.{attr}]",
    '    print(f"{a}: {{{a}}}")',
    "    {a}[{b}.{attr}] = {f}({b})",
    "    try:\n        {a} = {f}({b})\n    except Exception as e:\n        print(e)",
    "    {a} += len({b})",
    "    with open({a}) as fh:\n        {b} = fh.read()",
)
_JS_LINES = (
    "  const {a} = {f}({b});",
    "  if (!{a}) {{\n    return {b};\n  }}",
    "  for (const item of {a}) {{\n    {b}.push(item.{attr});\n  }}",
    "  console.log(`{a}: ${{{a}}}`);",
    "  {a}.{attr} = await {f}({b});",
    "  let {a} = {b}.filter(x => x.{attr});",
)


def code(rng: np.random.Generator, median_lines: float, sigma: float = 0.6) -> tuple[str, str]:
    """(language tag, snippet): a Python or JavaScript function, log-normal in length."""
    n = int(np.clip(round(rng.lognormal(math.log(median_lines), sigma)), 2, 80))
    python = rng.random() < 0.7
    lines = _PY_LINES if python else _JS_LINES
    body = []
    for _ in range(n):
        body.append(
            pick(rng, lines).format(
                a=pick(rng, _IDENTS),
                b=pick(rng, _IDENTS),
                f=pick(rng, _FUNCS),
                attr=pick(rng, _ATTRS),
            )
        )
    name, arg = pick(rng, _FUNCS), pick(rng, _IDENTS)
    if python:
        head, tail = f"def {name}({arg}):", f"    return {pick(rng, _IDENTS)}"
        return "python", "\n".join([head, *body, tail])
    head, tail = f"async function {name}({arg}) {{", f"  return {pick(rng, _IDENTS)};\n}}"
    return "javascript", "\n".join([head, *body, tail])
