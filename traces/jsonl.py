"""Streaming reader for JSON Lines files (LMSYS-Chat-1M dumps, vLLM/Mooncake timed traces).

Blank lines are skipped and do not count as records. A file whose first record is not a
JSON object is the wrong format; a later bad line is one malformed record; a bad last
line with no newline is a cut-off file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from traces.errors import TraceError


@dataclass(frozen=True)
class BadLine:
    """A line that is not a JSON object; `reason` says why."""

    reason: str


class JsonlStream:
    """Yield (record_index, line_number, object or BadLine); `truncated` tells of a cut."""

    def __init__(
        self, file: BinaryIO, where: str, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self.file = file
        self.where = where
        self.on_bytes = on_bytes
        self.truncated = False

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        index = 0
        for line_no, raw in enumerate(self.file, start=1):
            if self.on_bytes is not None:
                self.on_bytes(len(raw))
            if not raw.strip():
                continue
            value = _parse(raw)
            if isinstance(value, BadLine):
                if index == 0:
                    raise TraceError(
                        f"{self.where}: line {line_no}: not a JSON Lines file ({value.reason})"
                    )
                if not raw.endswith(b"\n"):  # only the last line lacks one
                    self.truncated = True
                    return
            yield index, line_no, value
            index += 1


def _parse(raw: bytes) -> Any:
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        return BadLine("not UTF-8 text")
    except json.JSONDecodeError as e:
        return BadLine(f"invalid JSON: {e.msg}")
    if not isinstance(value, dict):
        return BadLine(f"a JSON {type(value).__name__}, not an object")
    return value
