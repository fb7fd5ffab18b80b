"""Stage: run on the board: flash a built firmware, check it runs, infer every test sample, time, record.

One point is measured from a fresh session each attempt (flash, connect,
hello), so a board that reset or dropped off mid-point is flashed and the
point measured again from the start; a half-measured attempt is discarded.
The recipe on the board: every test sample once (its outputs against TFLite
Micro's and scored), then the timed runs of the latest input, then each
layer's time, then the stack's high-water mark.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.build import BuildError, Firmware
from harness.config import DeviceConfig
from harness.device.client import BoardClient, BoardReset, OnEvent, WrongFirmware
from harness.device.farm import KEEPALIVE_S, LOST_CHECK_S
from harness.device.faults import FaultInjector
from harness.device.gdb_remote import FlashError
from harness.device.link import DeviceError, Interrupted, LinkLost, SerialTimeout
from harness.device.session import board_session, place_session
from harness.quantize import QuantParams
from harness.results import ResultRow, record_latency_per_mac, record_scores
from harness.runner import BoardUnit, Requeue
from harness.scoring import score
from harness.stages import Stage

__all__ = ["Bench", "MAX_POINT_ATTEMPTS", "PointOnBoard", "Samples", "measure_point", "run_on_board"]

MAX_POINT_ATTEMPTS = 5  # sessions per point: a board that reset or dropped off is flashed and measured again
FARM_RETRY_PAUSE_S = 2.0  # after a farm place was lost, before the point is queued again
_RETRIED = (BoardReset, LinkLost, SerialTimeout, WrongFirmware, BuildError, FlashError)  # a new session may cure


@dataclass(frozen=True)
class Samples:
    """What a point is measured with: int8 test inputs, what its task scores the outputs against, and TFLite
    Micro's outputs for the same inputs (the reference every output must equal)."""

    task: str  # harness/scoring.py
    inputs: Path  # .npy files
    targets: Path
    reference: Path
    anomaly: Path | None = None


@dataclass(frozen=True)
class PointOnBoard:
    """One point to measure: its row so far, its firmware, and what the board's answers are checked with."""

    row: ResultRow  # everything known before the board runs (harness/points.py built_row)
    firmware: Firmware
    samples: Samples
    output: QuantParams  # the model output's, to score the int8 outputs
    layer_names: tuple[str, ...]
    log: Path  # the serial log; the session's board files go beside it


@dataclass(frozen=True)
class Bench:
    """How this run talks to boards, the same for every point."""

    device: DeviceConfig
    on_event: OnEvent  # an event in the run's log, with the point and board bound in
    stop: threading.Event  # set on Ctrl-C: every serial read ends
    faults: FaultInjector | None = None


def measure_point(point: PointOnBoard, unit: BoardUnit, bench: Bench) -> ResultRow:
    """Measure one point on one board; the row, failed in Stage.RUN after the last attempt, or in Stage.VERIFY."""
    point.log.parent.mkdir(exist_ok=True)
    for attempt in range(1, MAX_POINT_ATTEMPTS + 1):
        row = dataclasses.replace(point.row, place=unit.name)
        try:
            with _session(point, unit, bench) as client:
                if unit.lease is not None:
                    row.place = unit.lease.place
                run_on_board(row, client, point, bench.device)
            return row
        except Interrupted:
            raise
        except (DeviceError, BuildError) as err:
            final = attempt == MAX_POINT_ATTEMPTS or not isinstance(err, _RETRIED)
            _requeue_if_place_lost(unit, bench, err, final)
            bench.on_event("attempt_failed", attempt=attempt, error=str(err))
            if final:
                return row.fail(Stage.RUN, err)
    raise AssertionError("not reached")


def _session(point: PointOnBoard, unit: BoardUnit, bench: Bench):
    """A session on a local board (flashed through PlatformIO), or on the farm place the unit holds."""
    timeout = bench.device.timeout_s
    if unit.lease is None:
        return board_session(
            unit.board, point.firmware, point.log, timeout, unit.port, bench.on_event, bench.stop, bench.faults
        )
    return place_session(unit.lease, unit.board, point.firmware, point.log, timeout, bench.on_event, bench.stop)


def _requeue_if_place_lost(unit: BoardUnit, bench: Bench, err: Exception, final: bool) -> None:
    """On a farm, first ask whether the place's host went away (or the coordinator): not the point's fault, and
    no row. Before a failure is recorded, wait long enough for a hung host to be noticed."""
    lease = unit.lease
    if lease is None or not isinstance(err, DeviceError):
        return
    if lease.lost(KEEPALIVE_S if final else LOST_CHECK_S, bench.stop):
        bench.on_event("place_lost", place=lease.place, error=str(err))
        lease.set_aside()
        bench.stop.wait(FARM_RETRY_PAUSE_S)
        raise Requeue(str(err)) from None


def run_on_board(row: ResultRow, client: BoardClient, point: PointOnBoard, device: DeviceConfig) -> None:
    """Fill the row's measured columns from a board whose handshake showed the right firmware."""
    hello = client.info
    row.latency_unit, row.timing_source, row.clock_hz = hello.timer_unit, hello.timer_source, hello.clock_hz
    _infer_samples(row, client, point, device.accuracy_samples)
    times = np.array(client.bench(device.warmup, device.runs), dtype=np.int64)
    row.latency_median, row.latency_min, row.latency_max = float(np.median(times)), int(times.min()), int(times.max())
    row.latency_runs = len(times)
    record_latency_per_mac(row)
    row.layer_latency = json.dumps(dict(zip(point.layer_names, client.layers())))
    row.stack_used = client.stack()[0]
    if row.output_mismatches:
        row.fail(
            Stage.VERIFY,
            RuntimeError(f"{row.output_mismatches} of {row.device_samples} outputs differ from TFLite Micro"),
        )


def _infer_samples(row: ResultRow, client: BoardClient, point: PointOnBoard, samples: int) -> None:
    """Run the test samples (samples of them; 0: all), score the outputs and count those unlike TFLite Micro's."""
    data = point.samples
    inputs = np.load(data.inputs)
    count = len(inputs) if samples == 0 else min(samples, len(inputs))
    outputs = np.stack([np.frombuffer(client.infer(inputs[i].tobytes()), dtype=np.int8) for i in range(count)])
    anomaly = np.load(data.anomaly) if data.anomaly is not None else None
    row.device_samples = count
    record_scores(row, "device", score(data.task, point.output.dequantize(outputs), np.load(data.targets), anomaly))
    row.output_mismatches = int(np.sum(np.any(outputs != np.load(data.reference)[:count], axis=1)))
    row.reference_interpreter = "tflite-micro (host)"
