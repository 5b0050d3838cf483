"""The results manifest: one JSON row per finished or failed task, appended as results arrive.

A rerun skips a task when its latest row says done with the same settings and input hashes and
the output on disk still has the recorded hash; anything else is done again.
"""

from __future__ import annotations

import json
from pathlib import Path

from cpsgd.batch.tasks import Task, content_hash, inputs_hash

RESULTS_NAME = "batch-results.jsonl"


class ResultsManifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._latest: dict[tuple[str, str], dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed run: that task is simply done again
                if isinstance(row, dict) and "op" in row and "name" in row:
                    self._latest[row["op"], row["name"]] = row

    def latest(self, op: str, name: str) -> dict | None:
        return self._latest.get((op, name))

    def is_finished(self, task: Task) -> bool:
        row = self.latest(task.settings.op, task.name)
        return (
            row is not None
            and row.get("status") == "done"
            and row.get("settings_hash") == task.settings.digest()
            and task.output.exists()
            and row.get("output_hash") == content_hash(task.output)
            and row.get("input_hash") == inputs_hash(task)
        )

    def append(self, row: dict) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(row, sort_keys=True) + "\n")
        self._latest[row["op"], row["name"]] = row
