"""Streaming reader for a top-level JSON array of objects (ShareGPT's file format).

json.load holds the whole file and dies on a cut-off file with a raw JSONDecodeError.
This yields each element as soon as it is complete (json.JSONDecoder.raw_decode, C
speed, over a buffered read) and, when the file ends inside an element, stops and sets
`truncated`, so the caller keeps every whole record and can say where the cut was.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from traces.errors import TraceError

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_CHUNK_BYTES = 1 << 22
# A parse error this close to the end of the buffer may only mean the element goes on
# in the next chunk (a cut literal or escape is shorter than this).
_NEAR_END = 32
_CUT = object()


def _may_need_more(e: json.JSONDecodeError, buffered: int) -> bool:
    """Whether the error may only mean that the element continues past the buffer."""
    return e.msg.startswith("Unterminated string") or e.pos >= buffered - _NEAR_END


class JsonArrayStream:
    """Iterate the elements of a JSON array in `file`; `truncated` tells of a cut file."""

    def __init__(
        self,
        file: BinaryIO,
        where: str,
        on_bytes: Callable[[int], None] | None = None,
        chunk_bytes: int = _CHUNK_BYTES,
    ) -> None:
        self.file = file
        self.where = where
        self.on_bytes = on_bytes
        self.chunk_bytes = chunk_bytes
        self.truncated = False
        self.count = 0  # whole elements yielded so far
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._base = 0  # characters discarded before _buf, for error positions
        self._eof = False

    def __iter__(self) -> Iterator[Any]:
        c = self._peek()
        if c == "":
            raise TraceError(f"{self.where}: file is empty")
        if c != "[":
            raise TraceError(
                f"{self.where}: not a JSON array of records (the file starts with {c!r})"
            )
        self._pos += 1
        expect_value = True
        while True:
            c = self._peek()
            if c == "":
                self.truncated = True  # no closing ']'
                return
            if c == "]":
                self._pos += 1
                if self._peek() != "":
                    raise TraceError(f"{self.where}: extra data after the array's closing ']'")
                return
            if not expect_value:
                if c != ",":
                    raise TraceError(
                        f"{self.where}: record {self.count}: expected ',' or ']' at character "
                        f"{self._base + self._pos}, found {c!r}"
                    )
                self._pos += 1
                expect_value = True
                continue
            value = self._parse_value()
            if value is _CUT:
                return
            self.count += 1
            expect_value = False
            yield value

    def _parse_value(self) -> Any:
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as e:
                more = _may_need_more(e, len(self._buf))
                if more and self._refill():
                    continue
                if more:
                    self.truncated = True
                    return _CUT
                raise TraceError(
                    f"{self.where}: record {self.count}: invalid JSON at character "
                    f"{self._base + e.pos}: {e.msg}"
                ) from None
            if end == len(self._buf) and self._refill():
                continue  # a value that ends the buffer (a number) may go on
            self._pos = end
            return value

    def _peek(self) -> str:
        """The next non-whitespace character, reading more as needed; '' at end of file."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._refill():
                return ""

    def _refill(self) -> bool:
        """Append the next chunk to the buffer; False once the file is exhausted."""
        if self._eof:
            return False
        # Grow the read with the pending text so that a huge element costs linear time.
        raw = self.file.read(max(self.chunk_bytes, len(self._buf) - self._pos))
        if self.on_bytes is not None:
            self.on_bytes(len(raw))
        self._eof = not raw
        try:
            text = self._decoder.decode(raw, final=self._eof)
        except UnicodeDecodeError as e:
            if self._eof:
                text = ""  # the cut fell inside a multi-byte character
            else:
                raise TraceError(f"{self.where}: not UTF-8 text ({e.reason})") from None
        self._base += self._pos
        self._buf = self._buf[self._pos :] + text
        self._pos = 0
        return bool(text) or not self._eof
