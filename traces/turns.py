"""The paper's unit of work: a conversation's first user turn and the first reply to it.

With --turns all, every exchange instead: from the first user message on, while user
and assistant messages alternate (a conversation stops at the first message that breaks
the alternation, such as two user messages in a row or a system message).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


def all_exchanges(turns: Any, role_key: str, text_key: str) -> list[FirstExchange] | str:
    """Every (user, reply) pair from the first user message while the roles alternate.

    Returns the drop reason when there is not even one pair; MalformedRecord as above.
    """
    if not isinstance(turns, list):
        raise MalformedRecord(f"turns are {type(turns).__name__}, not a list")
    messages = [
        (str(t[role_key]).lower(), t[text_key]) for t in _checked(turns, role_key, text_key)
    ]
    start = next((i for i, (role, _) in enumerate(messages) if role in USER_ROLES), None)
    if start is None:
        return NO_USER_TURN
    pairs = []
    for i in range(start, len(messages) - 1, 2):
        (role, prompt), (reply_role, response) = messages[i], messages[i + 1]
        if role not in USER_ROLES or reply_role not in ASSISTANT_ROLES:
            break
        pairs.append(FirstExchange(prompt, response))
    return pairs or NO_RESPONSE


def _checked(turns: list, role_key: str, text_key: str) -> Iterable[dict]:
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or role_key not in turn or text_key not in turn:
            raise MalformedRecord(f"turn {i} lacks {role_key!r} or {text_key!r}")
        if not isinstance(turn[text_key], str):
            raise MalformedRecord(f"turn {i}: {text_key!r} is not a string")
        yield turn


TURNS = ("first", "all")  # what --turns takes


@dataclass
class ExchangeCollector:
    """Gathers first exchanges (or, with turns="all", every exchange) record by record.

    With strict, a malformed record is an error naming it instead of a counted drop.
    With turns="all" each exchange is a record of its conversation's session, at most
    max_turns of them per conversation.
    """

    source: str
    stats: LoadStats
    strict: bool = False
    turns: str = "first"
    max_turns: int | None = None
    record_id: list[str] = field(default_factory=list)
    prompt: list[str] = field(default_factory=list)
    response: list[str] = field(default_factory=list)
    session: list[int] = field(default_factory=list)
    turn: list[int] = field(default_factory=list)
    _sessions: int = 0

    def add(self, label: str, record_id: str, turns: Any, role_key: str, text_key: str) -> None:
        try:
            if self.turns == "all":
                exchanges = all_exchanges(turns, role_key, text_key)
            else:
                exchanges = first_exchange(turns, role_key, text_key)
        except MalformedRecord as e:
            self.malformed(label, str(e))
            return
        if isinstance(exchanges, str):
            self.stats.drop(exchanges)
            return
        if isinstance(exchanges, FirstExchange):
            exchanges = [exchanges]
        for k, exchange in enumerate(exchanges[: self.max_turns]):
            self.record_id.append(record_id)
            self.prompt.append(exchange.prompt)
            self.response.append(exchange.response)
            self.session.append(self._sessions)
            self.turn.append(k)
        self._sessions += 1

    def malformed(self, label: str, why: str) -> None:
        if self.strict:
            raise TraceError(f"{self.stats.where}: {label}: {why} (--strict)")
        self.stats.drop(MALFORMED)

    def records(self) -> SourceRecords:
        sessions = self.turns == "all"
        return SourceRecords(
            source=self.source,
            record_id=self.record_id,
            stats=self.stats,
            prompt=self.prompt,
            response=self.response,
            session=np.asarray(self.session, dtype=np.int64) if sessions else None,
            turn=np.asarray(self.turn, dtype=np.int64) if sessions else None,
        )
