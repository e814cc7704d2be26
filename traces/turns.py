"""The paper's unit of work: a conversation's first user turn and the first reply to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from traces.errors import TraceError
from traces.records import MALFORMED, NO_RESPONSE, NO_USER_TURN, LoadStats, SourceRecords

# Role names as they appear in ShareGPT ("from") and LMSYS-Chat-1M ("role").
USER_ROLES = frozenset({"human", "user"})
ASSISTANT_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing"})


class MalformedRecord(Exception):
    """A record that lacks the structure its format needs; the message says what."""


@dataclass(frozen=True)
class FirstExchange:
    """The first user turn and the first assistant turn after it."""

    prompt: str
    response: str


def first_exchange(turns: Any, role_key: str, text_key: str) -> FirstExchange | str:
    """Return the first exchange in `turns`, or the drop reason when there is none.

    Raises MalformedRecord when `turns` is not a list of {role_key, text_key} objects.
    """
    if not isinstance(turns, list):
        raise MalformedRecord(f"turns are {type(turns).__name__}, not a list")
    prompt = None
    for turn in _checked(turns, role_key, text_key):
        role = str(turn[role_key]).lower()
        if prompt is None and role in USER_ROLES:
            prompt = turn[text_key]
        elif prompt is not None and role in ASSISTANT_ROLES:
            return FirstExchange(prompt, turn[text_key])
    return NO_USER_TURN if prompt is None else NO_RESPONSE


def _checked(turns: list, role_key: str, text_key: str) -> Iterable[dict]:
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            raise MalformedRecord(f"turn {i} lacks {role_key!r} or {text_key!r}")
        if not isinstance(turn[text_key], str):
            raise MalformedRecord(f"turn {i}: {text_key!r} is not a string")
        yield turn


@dataclass
class ExchangeCollector:
    """Gathers first exchanges record by record for a text source, counting drops.

    With strict, a malformed record is an error naming it instead of a counted drop.
    """

    source: str
    stats: LoadStats
    strict: bool = False
    record_id: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    response: list[str] = field(default_factory=list)

    def add(self, label: str, record_id: str, turns: Any, role_key: str, text_key: str) -> None:
        try:
            exchange = first_exchange(turns, role_key, text_key)
        except MalformedRecord as e:
            self.malformed(label, str(e))
            return
        if isinstance(exchange, str):
            self.stats.drop(exchange)
            return
        self.record_id.append(record_id)
        self.prompt.append(exchange.prompt)
        self.response.append(exchange.response)

    def malformed(self, label: str, why: str) -> None:
        if self.strict:
            raise TraceError(f"{self.stats.where}: {label}: {why} (--strict)")
        self.stats.drop(MALFORMED)

    def records(self) -> SourceRecords:
        return SourceRecords(
            source=self.source,
            record_id=self.record_id,
            stats=self.stats,
            prompt=self.prompt,
            response=self.response,
        )
