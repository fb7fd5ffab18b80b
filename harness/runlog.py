"""A run's structured log (JSON lines) and its progress line with an ETA.

Every event of a run, from "point_done" to a single retried frame, is one
JSON object per line in <run>/run.jsonl, written as it happens, so a killed
run leaves a readable log behind and a test can count faults by kind.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

BAR_WIDTH = 20

Say = Callable[[str], None]  # where a stage tells the user what it does: print, or a test's list


class RunLog:
    def __init__(self, path: Path):
        self.path = path
        self.counts: Counter[str] = Counter()
        self._file = open(path, "a")
        self._lock = threading.Lock()  # boards measured in parallel log concurrently

    def event(self, kind: str, **fields) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": kind, **fields}
        with self._lock:
            self.counts[kind] += 1
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def bound(self, **context) -> Callable[..., None]:
        """An event function that adds context (e.g. the board and point) to every event."""
        return lambda kind, **fields: self.event(kind, **context, **fields)

    def close(self) -> None:
        self._file.close()


class Progress:
    """'[#####.....] 5/12 42% ETA 0:31' after each point; the ETA counts only points that took work."""

    def __init__(self, total: int, say: Callable[[str], None]):
        self.total = total
        self._say = say
        self._finished = 0
        self._worked = 0
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def point_finished(self, message: str, worked: bool = True) -> None:
        with self._lock:
            self._finished += 1
            self._worked += worked
            left = self.total - self._finished
            filled = BAR_WIDTH * self._finished // max(self.total, 1)
            line = (
                f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._finished}/{self.total} "
                f"{100 * self._finished // max(self.total, 1)}%{self._eta(left)} {message}"
            )
        self._say(line)

    def _eta(self, left: int) -> str:
        if not left or not self._worked:
            return ""
        seconds = round((time.monotonic() - self._started) / self._worked * left)
        return f" ETA {seconds // 60}:{seconds % 60:02d}"
