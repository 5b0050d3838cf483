"""Where tasks run: a local process pool (default) or a Ray cluster.

Both engines have the same small interface: ``submit`` a task under a key, then ``next_done``
blocks until at least one task has finished and returns its outcome. A worker that dies
(killed, out of memory, node lost) shows up as a ``WorkerLost`` outcome for the tasks it was
running; retrying is the runner's decision.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable

from cpsgd.errors import InputError

ENGINES = ("local", "ray")
RAY_REQUIREMENT = "ray>=2.60,<3"


class WorkerLost(RuntimeError):
    """The process that ran a task died before returning a result."""


@dataclass
class Outcome:
    key: int
    value: Any = None
    error: BaseException | None = None


class Engine(ABC):
    slots: int  # tasks to keep in flight

    @abstractmethod
    def submit(self, key: int, fn: Callable[[Any], Any], arg: Any) -> None: ...

    @abstractmethod
    def next_done(self) -> list[Outcome]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _limit_threads(threads: int) -> None:
    """Share the cores between workers instead of each one's OpenCV (and torch) using all."""
    import sys

    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class LocalEngine(Engine):
    """A pool of ``workers`` spawned processes. One task per worker is in flight, so when a
    worker dies only the tasks that were running are charged for it."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise InputError("--workers must be at least 1")
        self.slots = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[Future, tuple[int, ProcessPoolExecutor]] = {}

    def submit(self, key: int, fn: Callable[[Any], Any], arg: Any) -> None:
        if self._pool is None:
            # Spawned, not forked: a fork would copy the parent's threads (torch, OpenCV) mid-state.
            threads = max(1, (os.cpu_count() or 1) // self.slots)
            self._pool = ProcessPoolExecutor(
                self.slots, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                initargs=(threads,),
            )
        self._pending[self._pool.submit(fn, arg)] = (key, self._pool)

    def next_done(self) -> list[Outcome]:
        done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            key, pool = self._pending.pop(future)
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                # A dead worker breaks its whole pool; later tasks go to a fresh one.
                error = WorkerLost(f"a worker process died ({error})")
                if pool is self._pool:
                    self._pool.shutdown(wait=True, cancel_futures=True)
                    self._pool = None
            outcomes.append(Outcome(key, None if error else future.result(), error))
        return outcomes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _call(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Ray's remote function: the work function travels with each task (any picklable callable)."""
    return fn(arg)


class RayEngine(Engine):
    """Tasks as Ray remote functions with one CPU each. ``address`` joins a running cluster
    (``auto``, ``ray://host:10001``, ...); without it a private local instance starts on the
    loopback interface with ``num_cpus`` CPUs, and is stopped by ``close``."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        if not address:
            # Ray reads these when it is imported. The first makes a single-node instance whose
            # servers listen on 127.0.0.1 only (Ray's own switch for machines without clusters);
            # the second keeps a private instance from reporting usage.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError:
            raise InputError(f"--engine ray needs Ray: pip install 'cpsgd[ray]' (or '{RAY_REQUIREMENT}')") from None
        self._ray = ray
        if ray.is_initialized():
            raise InputError("Ray is already initialised in this process")
        options: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **options)
            if ray.util.get_node_ip_address() != "127.0.0.1":
                ray.shutdown()
                raise InputError(
                    "a private Ray instance would listen on the network because ray was imported before "
                    "cpsgd could configure it; start one yourself and pass --address"
                )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = 2 * max(1, cpus)  # a second task per CPU queued hides scheduling latency
        # Retries are the runner's, so that failures are counted the same on both engines.
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        self._pending: dict[Any, int] = {}

    def submit(self, key: int, fn: Callable[[Any], Any], arg: Any) -> None:
        self._pending[self._remote.remote(fn, arg)] = key

    def next_done(self) -> list[Outcome]:
        exceptions = self._ray.exceptions
        ready, _ = self._ray.wait(list(self._pending), num_returns=1)
        outcomes = []
        for ref in ready:
            key = self._pending.pop(ref)
            try:
                outcomes.append(Outcome(key, self._ray.get(ref)))
            except exceptions.RayTaskError as exc:  # the task raised: pass on its own exception
                outcomes.append(Outcome(key, error=exc.cause if exc.cause is not None else exc))
            except exceptions.RayError as exc:  # worker or node died, object lost, ...
                outcomes.append(Outcome(key, error=WorkerLost(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")))
        return outcomes

    def close(self) -> None:
        self._pending.clear()
        self._ray.shutdown()


def make_engine(name: str, workers: int | None = None, address: str | None = None) -> Engine:
    if name == "local":
        return LocalEngine(workers or os.cpu_count() or 1)
    if name == "ray":
        return RayEngine(address, workers)
    raise InputError(f"unknown engine {name!r}; choose one of: {', '.join(ENGINES)}")
