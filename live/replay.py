"""Open-loop replay: each request is sent at its traced arrival, whatever came before;
a session's later turn, closed loop, think_s after its previous turn ended (`Turns`).

Backend-neutral: a `Backend` sends one request and streams its tokens back (in-process
AsyncLLM in live/engine.py, an OpenAI-compatible server in live/server.py). A watchdog
ends the replay when nothing has progressed for `stall_timeout_s` (a dead or wedged
engine), so a replay never hangs: what finished is kept, the rest is marked failed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from live.prompts import continue_session
from live.records import FAILED, FINISHED, REJECTED, RequestRecord
from live.xargs import with_arrival

ENDED = (FINISHED, REJECTED, FAILED)


class Rejected(Exception):
    """The engine refused the request (too long for the model): counted, not failed."""


class Backend(Protocol):
    def begin(self, run_id: str, t0: float) -> None:
        """A run starts: its id and the monotonic time of trace time 0."""
        ...

    async def send(self, rec: RequestRecord, prompt_ids: list[int], xargs: dict[str, Any],
                   clock: Callable[[], float]) -> None:
        """Send one request, fill rec as tokens stream back; set rec.status when done.
        Raise Rejected for a request the engine cannot take; other exceptions fail it."""
        ...


@dataclass(frozen=True)
class Turns:
    """Sessions of a replay: row i is sent think_s[i] after row previous[i] ended, with
    that turn's prompt and answer in front of its own ids; previous[i] = -1: at its own
    arrival. Such a turn's arrival_s becomes the time it was sent."""

    previous: list[int]
    think_s: list[float]


@dataclass
class Progress:
    """When anything last happened; the watchdog reads it."""

    last_s: float = field(default_factory=time.monotonic)

    def tick(self) -> None:
        self.last_s = time.monotonic()


async def replay(
    backend: Backend,
    records: list[RequestRecord],
    prompts: list[list[int]],
    xargs: list[dict[str, Any]],
    t0: float,
    stall_timeout_s: float = 120.0,
    max_model_len: int | None = None,
    turns: Turns | None = None,
) -> str | None:
    """Replay records (sorted by arrival) against backend, trace time 0 at monotonic t0.
    prompts[i] and xargs[i] of a later turn are rebuilt when it is sent.
    Returns why the replay was cut short, or None when every request ended on its own."""
    progress = Progress()
    previous = turns.previous if turns is not None else [-1] * len(records)
    ended = [asyncio.Event() for _ in records]
    ended_s = [math.nan] * len(records)
    for p in previous:
        if p >= 0:
            records[p].output_ids = []  # its next turn's prompt repeats the answer

    def clock() -> float:
        progress.tick()
        return time.monotonic() - t0

    async def one(i: int) -> None:
        try:
            if previous[i] < 0:
                await at_arrival(i)
            elif not await after_previous_turn(i):
                return
            await send(i)
        finally:
            ended_s[i] = time.monotonic() - t0
            ended[i].set()

    async def at_arrival(i: int) -> None:
        delay = records[i].arrival_s - (time.monotonic() - t0)
        if delay > 0:
            await asyncio.sleep(delay)

    async def after_previous_turn(i: int) -> bool:
        """Wait for the previous turn's end and the think time; build the prompt."""
        p, rec = previous[i], records[i]
        await ended[p].wait()
        prev = records[p]
        if prev.status not in (FINISHED, REJECTED):
            rec.fail(FAILED, f"its previous turn, request {prev.request_id}, did not finish")
            return False
        delay = ended_s[p] + turns.think_s[i] - (time.monotonic() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
        rec.arrival_s = rec.submit_s = clock()
        if prev.status == FINISHED:
            prompts[i] = continue_session(prompts[p], prev.output_ids or (), prompts[i])
        xargs[i] = with_arrival(xargs[i], rec.arrival_s)
        return True

    async def send(i: int) -> None:
        rec = records[i]
        if math.isnan(rec.submit_s):  # a later turn's was set with its arrival
            rec.submit_s = clock()
        if max_model_len is not None and rec.prompt_tokens + rec.output_tokens > max_model_len:
            rec.fail(REJECTED, f"prompt + output = {rec.prompt_tokens + rec.output_tokens} "
                               f"tokens > max_model_len {max_model_len}")
            return
        try:
            await backend.send(rec, prompts[i], xargs[i], clock)
        except Rejected as e:
            rec.fail(REJECTED, str(e))
        except asyncio.CancelledError:
            rec.fail(FAILED, "cancelled")
            raise
        except Exception as e:  # noqa: BLE001 - a failed request is data, not a crash
            rec.fail(FAILED, f"{type(e).__name__}: {e}".splitlines()[0][:300])
        progress.tick()

    tasks = [asyncio.create_task(one(i)) for i in range(len(records))]
    reason = None
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=1.0)
        in_flight = any(not math.isnan(r.submit_s) and r.status not in ENDED for r in records)
        if pending and in_flight and time.monotonic() - progress.last_s > stall_timeout_s:
            reason = f"no progress for {stall_timeout_s:.0f} s; the engine stalled or died"
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            break
    for rec in records:
        if rec.status not in ENDED:
            rec.fail(FAILED, reason or "ended without finishing")
    failed = [r for r in records if r.status == FAILED]
    if reason is None and failed:
        reason = f"{len(failed)} request(s) failed; first: {failed[0].error}"
    return reason
