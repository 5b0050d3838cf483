"""Batch processing of a corpus: one task per clip on a local process pool or a Ray cluster.

    items = find_items("videos/")                      # folder or CSV/JSONL manifest
    tasks = make_tasks(items, Settings("encode", encoder=EncoderConfig()), Path("out"))
    with make_engine("ray") as engine:                 # or "local" (default)
        summary = run_batch(tasks, engine, Path("out"))

Each clip is one task (not one GoP): the encoder's rate control and GoP lengths may depend on
the whole clip, and only a whole-clip task is guaranteed to give the bytes `cpsgd encode` gives.
"""

from cpsgd.batch.cli import add_batch_command
from cpsgd.batch.corpus import Item, find_items
from cpsgd.batch.engines import Engine, LocalEngine, RayEngine, WorkerLost, make_engine
from cpsgd.batch.manifest import RESULTS_NAME, ResultsManifest
from cpsgd.batch.runner import BatchSummary, make_tasks, run_batch
from cpsgd.batch.tasks import Settings, Task, content_hash, run_task

__all__ = [
    "BatchSummary", "Engine", "Item", "LocalEngine", "RESULTS_NAME", "RayEngine", "ResultsManifest", "Settings",
    "Task", "WorkerLost", "add_batch_command", "content_hash", "find_items", "make_engine", "make_tasks",
    "run_batch", "run_task",
]
