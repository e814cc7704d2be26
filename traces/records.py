"""What every loader hands to the build pipeline: records, plus what was read and dropped.

A source gives text (ShareGPT, LMSYS), token counts (BurstGPT, vLLM timed traces,
synthetic) or prompt text with drawn output lengths (lmsys-like), and maybe timestamps;
the pipeline tokenizes, filters and adds arrivals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Reasons a record is dropped, in the order the pipeline checks them.
MALFORMED = "malformed"  # record lacks the fields its format needs
NO_USER_TURN = "no_user_turn"  # conversation has no human/user turn
NO_RESPONSE = "no_response"  # no gpt/assistant turn after the first user turn
OTHER_MODEL = "other_model"  # --model asked for another model
EMPTY_PROMPT = "empty_prompt"  # prompt is empty or blank (0 tokens)
EMPTY_RESPONSE = "empty_response"  # response is empty or blank (0 tokens)
PROMPT_TOO_LONG = "prompt_too_long"  # over --max-prompt-tokens
OUTPUT_TOO_LONG = "output_too_long"  # over --max-output-tokens
AFTER_DURATION = "after_duration"  # arrives at or after --duration
SESSION_CUT = "session_cut"  # a later turn of a session whose earlier turn was dropped


@dataclass(frozen=True)
class SourceOptions:
    """What the user asked of a source; fields that a source does not use are ignored."""

    path: str | None = None
    offset: int = 0
    limit: int | None = None
    strict: bool = False
    model: str | None = None
    timestamp_unit: str = "ms"
    prompt_dist: str | None = None
    output_dist: str | None = None
    num_requests: int | None = None
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None
    seed: int = 0
    hash_block_tokens: int | None = None
    hash_ids: bool = True  # False: --no-hash-ids, leave prefix identity out
    turns: str = "first"
    max_turns: int | None = None
    num_groups: int | None = None
    prompts_per_group: int | None = None
    system_prompt_len: int | None = None
    question_len: int | None = None
    output_len: int | None = None
    stage_counts: tuple[int, ...] | None = None  # requests per --stages stage

    def in_range(self, index: int) -> bool:
        """Whether record `index` (0-based, before any filtering) is in --offset/--limit."""
        return index >= self.offset and (self.limit is None or index < self.offset + self.limit)

    def past_range(self, index: int) -> bool:
        """Whether record `index` and all after it are beyond --offset/--limit."""
        return self.limit is not None and index >= self.offset + self.limit


@dataclass
class LoadStats:
    """Counts for the trace's metadata: records read in range, dropped by reason."""

    where: str  # how messages name the input
    path: str | None = None  # what the metadata records as the input
    rows_read: int = 0
    dropped: Counter = field(default_factory=Counter)
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # source-specific facts for the metadata

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n


@dataclass
class SourceRecords:
    """Column-wise records from one source. Text or counts (or both) must be present.

    A source with prompt text but drawn output lengths (lmsys-like) gives prompt and
    output_tokens and no response; `extra` holds further optional schema columns.
    hash_ids (one int64 array per record, blocks of hash_block_tokens) come from a
    source that has them, or from the pipeline's tokenizer for a text source. With
    --turns all, each record is one turn: `session` numbers its conversation (records
    of a session are contiguous, turns 0, 1, ... in order) and `turn` is its index.
    """

    source: str
    record_id: list[str]
    stats: LoadStats
    prompt: list[str] | None = None
    response: list[str] | None = None
    prompt_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None
    timestamp_s: np.ndarray | None = None
    extra: dict[str, list | np.ndarray] = field(default_factory=dict)  # more schema columns
    hash_ids: list[np.ndarray] | None = None
    hash_block_tokens: int | None = None
    session: np.ndarray | None = None
    turn: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.record_id)

    @property
    def has_text(self) -> bool:
        return self.prompt is not None

    def take(self, index: np.ndarray) -> SourceRecords:
        """The records at `index` (an int array), in that order."""
        idx = [int(i) for i in index]

        def pick(values):
            if values is None:
                return None
            if isinstance(values, np.ndarray):
                return values[index]
            return [values[i] for i in idx]

        return SourceRecords(
            source=self.source,
            record_id=pick(self.record_id),
            stats=self.stats,
            prompt=pick(self.prompt),
            response=pick(self.response),
            prompt_tokens=pick(self.prompt_tokens),
            output_tokens=pick(self.output_tokens),
            timestamp_s=pick(self.timestamp_s),
            extra={name: pick(values) for name, values in self.extra.items()},
            hash_ids=pick(self.hash_ids),
            hash_block_tokens=self.hash_block_tokens,
            session=pick(self.session),
            turn=pick(self.turn),
        )
