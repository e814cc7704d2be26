"""vLLM's waiting queue, kept in the policy's order.

The plug-in replaces the scheduler's `self.waiting` (a deque for `fcfs`, a heap for
`priority` in vLLM 0.32, vllm/v1/core/sched/request_queue.py) with this queue and sorts
it by the policy's keys at the start of every schedule(); inside a step it behaves as
vLLM's FCFS queue, so vLLM's own admission loop (peek, pop, prepend skipped or
preempted requests) runs unchanged over the policy's order. Read as a sequence it is
what vLLM's FCFS deque is: indexable, iterable front to back, sized, with `in`,
`remove` and `reversed`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

try:  # the abstract interface when vLLM is installed; plain object otherwise (unit tests)
    from vllm.v1.core.sched.request_queue import RequestQueue as _RequestQueue
except ImportError:  # pragma: no cover - exercised only without vLLM
    _RequestQueue = object  # type: ignore[assignment,misc]


class PolicyQueue(_RequestQueue):  # type: ignore[misc,valid-type]
    """A FIFO of vLLM requests that `reorder` puts in the policy's order once a step.

    Between steps only new requests (add_request) and preempted ones (prepend_request)
    can be out of place; when the other keys did not move, reorder re-inserts just those
    by binary search instead of sorting the whole queue."""

    INSERT_AT_MOST = 64  # more moved requests than this: sort everything

    def __init__(self, requests: Iterable[Any] = ()) -> None:
        self._q: list[Any] = list(requests)
        self._moved: list[Any] = list(self._q)

    def reorder(self, key: Callable[[Any], Any], full: bool = True) -> None:
        """Order by key (stable). full=False: only the requests added or re-queued since
        the last reorder may be out of place."""
        if full or len(self._moved) > self.INSERT_AT_MOST:
            self._q.sort(key=key)
        else:
            # All of them out first: a binary search needs the rest in order.
            back = []
            for r in self._moved:
                try:
                    self._q.remove(r)
                except ValueError:  # left the queue since (or listed twice)
                    continue
                back.append(r)
            for r in back:
                bisect.insort(self._q, r, key=key)
        self._moved = []

    def add_request(self, request: Any) -> None:
        self._q.append(request)
        self._moved.append(request)

    def pop_request(self) -> Any:
        return self._q.pop(0)

    def peek_request(self) -> Any:
        if not self._q:
            raise IndexError("peek from an empty queue")
        return self._q[0]

    def prepend_request(self, request: Any) -> None:
        self._q.insert(0, request)
        self._moved.append(request)

    def prepend_requests(self, requests: Iterable[Any]) -> None:
        # vLLM's FCFS queue does extendleft: its callers pass the requests it skipped
        # this step in reverse, so they return to the front in their order.
        self._q[:0] = list(requests)[::-1]

    def remove_request(self, request: Any) -> None:
        self._q.remove(request)

    remove = remove_request  # as on vLLM's FCFS deque

    def remove_requests(self, requests: Iterable[Any]) -> None:
        gone = set(requests)
        self._q = [r for r in self._q if r not in gone]

    def __bool__(self) -> bool:
        return bool(self._q)

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._q))

    def __reversed__(self) -> Iterator[Any]:
        return reversed(list(self._q))

    def __getitem__(self, index: int) -> Any:
        return self._q[index]

    def __contains__(self, request: object) -> bool:
        return request in self._q
