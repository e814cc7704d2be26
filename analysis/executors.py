"""Where a sweep's runs execute: in this process, on this machine's cores, or on Ray.

Each executor yields (index, result) as jobs finish, in any order; a job that could not
run (a dead worker, a lost Ray node) yields its exception instead, so the sweep records
it as failed and goes on. `--executor NAME` picks one from the registry below.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from analysis.errors import AnalysisError

Job = tuple  # the positional arguments of one call


@dataclass(frozen=True)
class ExecutorOptions:
    """--workers (None: all cores) and --ray-address (None: a local Ray instance)."""

    workers: int | None = None
    ray_address: str | None = None

    def num_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


class Executor:
    """Runs fn over jobs; a context manager that owns its workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is KeyboardInterrupt:
            self.abort()
        else:
            self.close()

    def abort(self) -> None:
        """Ctrl-C: stop at once, dropping the runs in flight (a rerun does them again)."""
        self.close()

    def share(self, obj: Any) -> Any:
        """A handle to obj that jobs can take as an argument (Ray: one copy in its store)."""
        return obj

    def imap_unordered(self, fn: Callable, jobs: Sequence[Job]) -> Iterator[tuple[int, Any]]:
        """Yield (index into jobs, fn(*job) or the exception that stopped it)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (nothing to release by default)."""


_EXECUTORS: dict[str, Callable[[ExecutorOptions], Executor]] = {}


def register(name: str):
    def add(factory):
        _EXECUTORS[name] = factory
        return factory

    return add


def executor_names() -> list[str]:
    return sorted(_EXECUTORS)


def make_executor(name: str, options: ExecutorOptions) -> Executor:
    try:
        factory = _EXECUTORS[name]
    except KeyError:
        raise AnalysisError(
            f"--executor: unknown executor {name!r}; choose {', '.join(executor_names())}"
        ) from None
    if options.workers is not None and options.workers < 1:
        raise AnalysisError("--workers: must be >= 1")
    if options.ray_address and name != "ray":
        raise AnalysisError("--ray-address needs --executor ray")
    return factory(options)


@register("serial")
class SerialExecutor(Executor):
    """One run after another in this process (debugging, and the benchmark's baseline)."""

    def __init__(self, options: ExecutorOptions) -> None:
        pass

    def imap_unordered(self, fn, jobs):
        for i, job in enumerate(jobs):
            yield i, fn(*job)


@register("local")
class LocalExecutor(Executor):
    """A process pool on this machine's cores (forkserver: no threads are forked)."""

    def __init__(self, options: ExecutorOptions) -> None:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            ctx.set_forkserver_preload(["analysis.worker", "sim.run", "traces.build"])
        self.workers = options.num_workers()
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)

    def imap_unordered(self, fn, jobs):
        # Submit a window at a time: a large sweep does not queue every job's arguments.
        pending: dict[Any, int] = {}
        it = iter(enumerate(jobs))
        try:
            while True:
                for i, job in it:
                    pending[self.pool.submit(fn, *job)] = i
                    if len(pending) >= 4 * self.workers:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=pending.get):
                    i = pending.pop(fut)
                    exc = fut.exception()
                    yield i, exc if exc is not None else fut.result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        # Waiting would hang: the workers got the same SIGINT. End them and the forkserver.
        workers = list((self.pool._processes or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.join(timeout=5)


@register("ray")
class RayExecutor(Executor):
    """Ray tasks: a cluster at --ray-address, or a Ray instance started on this machine."""

    def __init__(self, options: ExecutorOptions) -> None:
        try:
            import ray
        except ImportError:
            raise AnalysisError(
                "--executor ray needs the ray package (pip install 'ltrsched[ray]')"
            ) from None
        self.ray = ray
        quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
        try:
            if options.ray_address:
                ray.init(address=options.ray_address, **quiet)
            else:
                ray.init(num_cpus=options.num_workers(), include_dashboard=False, **quiet)
        except Exception as e:  # noqa: BLE001 - Ray raises bare Exception on a failed start
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            where = options.ray_address or "a local instance"
            raise AnalysisError(f"--executor ray: Ray did not start ({where}): {first}") from None
        self._remote: dict[Callable, Any] = {}

    def share(self, obj):
        return self.ray.put(obj)

    def imap_unordered(self, fn, jobs):
        remote = self._remote.setdefault(fn, self.ray.remote(num_cpus=1, max_retries=1)(fn))
        refs = {remote.remote(*job): i for i, job in enumerate(jobs)}
        pending = list(refs)
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield refs[ref], self.ray.get(ref)
                    except self.ray.exceptions.RayError as e:
                        yield refs[ref], e
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def close(self) -> None:
        self.ray.shutdown()
