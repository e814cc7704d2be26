"""Open-loop replay: each request is sent at its traced arrival, whatever came before.

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

from live.records import FAILED, FINISHED, REJECTED, RequestRecord

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
) -> str | None:
    """Replay records (sorted by arrival) against backend, trace time 0 at monotonic t0.
    Returns why the replay was cut short, or None when every request ended on its own."""
    progress = Progress()

    def clock() -> float:
        progress.tick()
        return time.monotonic() - t0

    async def one(i: int) -> None:
        rec = records[i]
        delay = rec.arrival_s - (time.monotonic() - t0)
        if delay > 0:
            await asyncio.sleep(delay)
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
