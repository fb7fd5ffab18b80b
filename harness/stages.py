"""The stages a result row can fail in, as its `failed_stage` column names them.

Errors in the stages before these (reading the config, training, pruning,
converting, compiling a single format) stop the sweep before any board is
touched; failures from here on are one point's, and become its row.
Each value is the lower-case string stored in results.csv, so old runs and
the report read the same; a Stage is a str, and compares equal to it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["KEPT_FAILURES", "Stage"]


class Stage(StrEnum):
    CHOOSE = "choose"  # the auto kernel's per-layer choice (harness/auto.py)
    COMPILE = "compile"  # the auto kernel's variant, compiled once its choice is made (harness/plan.py)
    FIT = "fit"  # the model is too big for the board (harness/compiler/budget.py): a result, not a fault
    BUILD = "build"  # PlatformIO (harness/build.py)
    RUN = "run"  # flash, connect, infer, time (harness/device/measure.py)
    VERIFY = "verify"  # the board's outputs differ from TFLite Micro's: a result, not a fault


# Failed stages that are results (the board ran; the model does not fit the board): others are measured again,
# and the auto kernel leaves a format that failed so out of its choice (harness/auto.py choose_auto).
KEPT_FAILURES = frozenset({Stage.VERIFY, Stage.FIT})
