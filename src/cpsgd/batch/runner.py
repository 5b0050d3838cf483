"""The batch driver: skip finished outputs, keep the engine busy, retry, record every result."""

from __future__ import annotations

import itertools
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from cpsgd.batch.corpus import Item
from cpsgd.batch.engines import Engine
from cpsgd.batch.manifest import RESULTS_NAME, ResultsManifest
from cpsgd.batch.tasks import Settings, Task, run_task
from cpsgd.errors import CpsgdError

DEFAULT_RETRIES = 2


@dataclass
class BatchSummary:
    done: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(row["frames"] for row in self.done)


def make_tasks(items: list[Item], settings: Settings, outdir: Path) -> list[Task]:
    outdir = outdir.resolve()
    return [
        Task(item.name, item.path, outdir / settings.output_name(item.name), settings, item.poses, item.masks)
        for item in items
    ]


def _retryable(error: BaseException) -> bool:
    # A user or bitstream error fails the same way every time; anything else may be transient.
    return not isinstance(error, CpsgdError)


def _describe(error: BaseException) -> str:
    if isinstance(error, CpsgdError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def run_batch(
    tasks: list[Task],
    engine: Engine,
    outdir: Path,
    retries: int = DEFAULT_RETRIES,
    force: bool = False,
    progress: bool = True,
    work: Callable[[Task], dict] = run_task,
) -> BatchSummary:
    """Run every task not already finished; each row is appended to OUTDIR/batch-results.jsonl
    as soon as it arrives, so that a killed driver or worker loses only the tasks in flight.
    A task is tried at most ``1 + retries`` times."""
    start = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    manifest = ResultsManifest(outdir / RESULTS_NAME)
    summary = BatchSummary()
    todo: deque[Task] = deque()
    for task in tasks:
        if not force and manifest.is_finished(task):
            summary.skipped.append(task.name)
        else:
            todo.append(task)
    attempts = {task.name: 0 for task in todo}
    in_flight: dict[int, Task] = {}
    keys = itertools.count()
    op = tasks[0].settings.op if tasks else "batch"
    with tqdm(
        total=len(tasks), initial=len(summary.skipped), unit="clip", desc=f"batch {op}", disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        while todo or in_flight:
            while todo and len(in_flight) < engine.slots:
                task = todo.popleft()
                attempts[task.name] += 1
                key = next(keys)
                in_flight[key] = task
                engine.submit(key, work, task)
            for outcome in engine.next_done():
                task = in_flight.pop(outcome.key)
                if outcome.error is None:
                    row = {**outcome.value, "attempts": attempts[task.name]}
                    manifest.append(row)
                    summary.done.append(row)
                elif _retryable(outcome.error) and attempts[task.name] <= retries:
                    todo.append(task)
                    continue
                else:
                    row = {
                        "name": task.name, "op": task.settings.op, "input": str(task.input), "status": "failed",
                        "error": _describe(outcome.error), "attempts": attempts[task.name],
                        "settings_hash": task.settings.digest(),
                    }
                    manifest.append(row)
                    summary.failed.append(row)
                bar.update()
                elapsed = time.perf_counter() - start
                bar.set_postfix(frames_per_s=f"{summary.frames / elapsed:.1f}", failed=len(summary.failed))
    summary.seconds = time.perf_counter() - start
    return summary
