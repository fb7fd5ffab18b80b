"""Stage: the auto kernel's choice of a format per layer, made from the formats measured on the same board.

It runs after every single format of a point is measured (the sweep's
second phase): harness/chooser.py picks per layer from their measured layer
latencies and weight bytes; the chosen mix is compiled and becomes one more
job. A choice of dense for every layer is the dense variant itself, so its
row is the dense row, not a measurement of its own: a firmware that differed
from dense's only in its model id string measured one 40-instruction timer
tick apart from it (ResNet-8 at 50 %), and auto is never slower than dense.
A point whose choice cannot be made is a failed row (Stage.CHOOSE, or
Stage.COMPILE when its variant cannot be compiled).
"""

from __future__ import annotations

import dataclasses
import json

from harness import cache
from harness.chooser import AUTO, DENSE, Choice, ChooserError, choose, layer_options
from harness.compiler import KERNEL_FORMATS, CompiledModel, CompileError
from harness.plan import PlannedPoint, Variants, compile_point
from harness.points import PointKeys, point_row, summary
from harness.results import ResultRow
from harness.runner import Job
from harness.stages import KEPT_FAILURES, Stage

__all__ = ["auto_job", "choose_auto"]


def choose_auto(
    planned: PlannedPoint, candidates: dict[str, tuple[CompiledModel, ResultRow]], flash_budget: int
) -> tuple[Choice, dict[str, str]]:
    """The auto kernel's per-layer formats for a point on a board, from its candidates: format -> (compiled
    variant, measured row); and the formats left out, with why.

    A format whose outputs differ from TFLite Micro's, or that does not fit
    the board, is no candidate and is left out. One that could not be
    measured (its build or run failed) leaves the choice open, so there is
    none: the auto point fails, and is chosen again when the sweep resumes
    and measures that format again. Dense is the reference and is never left out.
    """
    unmeasured = [
        f"{fmt}: {row.failed_stage}: {row.error}"
        for fmt, (_, row) in candidates.items()
        if row.status != "ok" and (row.failed_stage not in KEPT_FAILURES or fmt == DENSE)
    ]
    if unmeasured:
        raise ChooserError(
            f"the auto kernel chooses from every format measured on {planned.board.name}, and "
            f"{len(unmeasured)} could not be: {'; '.join(unmeasured)}"
        )
    left_out = {fmt: row.error for fmt, (_, row) in candidates.items() if row.status != "ok"}
    kept = {fmt: candidate for fmt, candidate in candidates.items() if fmt not in left_out}
    options = layer_options(
        {fmt: compiled for fmt, (compiled, _) in kept.items()},
        {fmt: json.loads(row.layer_latency) for fmt, (_, row) in kept.items()},
    )
    return choose(options, flash_budget or None), left_out


def auto_job(
    planned: PlannedPoint, plan: list[PlannedPoint], variants: Variants, keys: PointKeys
) -> Job | ResultRow | None:
    """The auto variant of a point as a job; None if measured before; the failed row, recorded, if no choice
    can be made."""
    ctx = keys.ctx
    candidates = {
        p.kernel: p
        for p in plan
        if p.point is planned.point and p.board is planned.board and p.kernel in KERNEL_FORMATS
    }
    measured = {
        fmt: (variants[p.point.tflite_path, fmt], keys.store.row(keys.key_of[p.index])) for fmt, p in candidates.items()
    }
    try:
        choice, left_out = choose_auto(planned, measured, ctx.config.flash_budget)
        all_dense = set(choice.formats.values()) == {DENSE}
        compiled = None if all_dense else compile_point(planned.point, AUTO, choice.formats)
    except (ChooserError, CompileError) as err:
        stage = Stage.CHOOSE if isinstance(err, ChooserError) else Stage.COMPILE
        key = cache.content_hash(
            AUTO, *(keys.key_of[p.index] for p in candidates.values()), str(ctx.config.flash_budget)
        )
        row = point_row(ctx, planned, None).fail(stage, err)
        keys.store.save(planned.index, key, row)
        keys.log.event("point_done", point=planned.index + 1, key=key, status="error", error=str(err))
        ctx.progress(f"{planned.label}: {summary(row)}")
        return row
    keys.log.event(
        "auto_chosen",
        point=planned.index + 1,
        board=planned.board.name,
        target=planned.point.target,
        method=planned.point.method,
        flash_budget=ctx.config.flash_budget,
        layers=choice.to_json(),
        left_out=left_out,
    )
    notes = "; ".join(f"{fmt} left out: {error}" for fmt, error in left_out.items())
    ctx.progress(f"{planned.label}: {choice.describe()}" + (f"; {notes}" if notes else ""))
    if compiled is None:
        return _dense_as_auto(planned, measured[DENSE][1], keys.key_of[candidates[DENSE].index], keys, notes)
    return keys.job(planned, compiled, notes)


def _dense_as_auto(planned: PlannedPoint, dense: ResultRow, dense_key: str, keys: PointKeys, notes: str) -> ResultRow:
    """The auto row of a point whose every layer is chosen dense: the dense row, recorded as auto's, saying so."""
    said = "every layer dense: this is the dense variant's row (same model and kernels), not measured again"
    row = dataclasses.replace(dense, kernel=AUTO, notes="; ".join(filter(None, (said, notes))))
    key = cache.content_hash(AUTO, dense_key)
    keys.store.save(planned.index, key, row, listed=planned.listed)
    keys.log.event("point_done", point=planned.index + 1, key=key, status="ok", same_as="dense")
    keys.ctx.progress(f"{planned.label}: {said}")
    return row
