"""Measure a sweep's points on boards: builds in parallel, a queue per kind of board, a worker per board.

Firmware builds run on a pool (one per core); each finished build joins the
queue of its board kind, and every board unit of that kind (an emulator
instance, a real board on its own serial port, or a farm worker holding a
place in turn) takes the next point from it, so several boards measure
concurrently and a slow board never holds up a fast one. A point whose
board went away under it (a farm exporter died) goes back into the queue.
Ctrl-C stops everything in order: a stop event ends every
serial read, sessions stop their emulators, and nothing half-measured is
recorded.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from harness.device.boards import Board
from harness.device.link import DeviceError, Interrupted
from harness.device.ports import find_ports
from harness.device.session import check_port
from harness.results import ResultRow
from harness.stages import Stage

if TYPE_CHECKING:
    from harness.points import Variant

_JOIN_POLL_S = 0.2  # the main thread wakes this often, so Ctrl-C is seen while boards work


@dataclass(frozen=True)
class BoardUnit:
    """One board that measures points: an emulator instance, a real board on one serial port, or a farm worker."""

    board: Board
    port: str  # "" where the harness picks one (emulators)
    name: str  # "mps2_an386#2"
    lease: Any = None  # a farm worker's hold on a place (harness/device/farm.py PlaceLease); closed when it ends


class Requeue(Exception):
    """The point was not measured for a reason outside it (its board's host went away): measure it elsewhere."""


@dataclass
class Job:
    """One point of the sweep: a firmware to build and measure on a kind of board."""

    index: int  # position in the sweep; rows are written in this order
    key: str  # hash of everything the result depends on
    label: str
    board: Board
    row: ResultRow  # the configuration columns; measuring fills a copy
    work: Variant  # what build and measure need: the planned point, its compiled variant, its firmware folder


class Steps(Protocol):
    """What run_jobs does with each job; called from its threads."""

    def build(self, job: Job) -> Any:
        """The job's firmware; an exception with a `stage` attribute fails the job in that stage."""

    def measure(self, job: Job, unit: BoardUnit, built: Any) -> ResultRow:
        """The job's row, measured on the unit's board."""

    def finish(self, job: Job, row: ResultRow) -> None:
        """Receives each row as soon as it exists."""


def board_units(boards: list[Board], port_spec: str, parallel: int) -> list[BoardUnit]:
    """The boards to measure on.

    port_spec is "" (emulators pick their own ports; real boards are found by
    their USB IDs), a port for every board (as before), or "name=port,..."
    naming a port per real board; a name given twice is two boards of that kind.
    An emulated kind gets `parallel` instances for each time it is in `boards`
    (so `--boards mps2_an386,mps2_an386` is `--parallel 2`).
    """
    assigned: dict[str, list[str]] = {}
    if "=" in port_spec:
        for item in filter(None, (part.strip() for part in port_spec.split(","))):
            name, _, port = item.partition("=")
            assigned.setdefault(name.strip(), []).append(port.strip())
    units = []
    for board, copies in Counter(boards).items():
        ports = assigned.get(board.name) or ([port_spec] if port_spec and "=" not in port_spec else [])
        if board.emulated:
            if ports and parallel * copies > 1:
                raise DeviceError(
                    f"board '{board.name}': several instances need ports the harness picks, not --port {ports[0]}"
                )
            for port in ports:
                check_port(board, port)
            ports = ports or [""] * (parallel * copies)
        elif not ports:
            ports = [port.device for port, matches in find_ports() if board in matches]
            if not ports:
                raise DeviceError(
                    f"no attached serial port looks like a '{board.name}' (USB "
                    f"{', '.join(board.usb) or 'IDs unknown'}): connect it, or pass "
                    f"--port {board.name}=/dev/ttyACM0"
                )
        units += [BoardUnit(board, port, f"{board.name}#{number}") for number, port in enumerate(ports, start=1)]
    return units


def farm_units(farm, boards: list[Board], points_per_turn: int) -> list[BoardUnit]:
    """One worker per place of each board kind on the farm (places tagged board=<name>), each with a lease.

    A place whose exporter is down now does not count; a kind with no live place still gets one worker,
    which waits its turn (the place may come back, or be freed).
    """
    from harness.device.farm import PlaceLease

    units = []
    for board in dict.fromkeys(boards):
        places = farm.places({"board": board.name})
        if not places:
            raise DeviceError(
                f"farm {farm.address} has no place tagged board={board.name} (add one: "
                f"labgrid-client -p PLACE set-tags board={board.name}; docs/farm.md)"
            )
        workers = max(1, sum(place.live for place in places))
        units += [
            BoardUnit(board, "", f"{board.name}@farm#{number}", PlaceLease(farm, board.name, points_per_turn))
            for number in range(1, workers + 1)
        ]
    return units


def run_jobs(
    jobs: list[Job], units: list[BoardUnit], steps: Steps, stop: threading.Event, build_workers: int | None = None
) -> None:
    """Build and measure every job; `steps.finish` receives each row as soon as it exists (from any thread)."""
    kinds = Counter(job.board.name for job in jobs)
    queues = {unit.board.name: _PointQueue(kinds[unit.board.name]) for unit in units}
    # Each worker says when it has ended. (Not Thread.join: in Python 3.11 a join that Ctrl-C interrupts
    # marks a still running thread as ended, and the harness would exit under a board's session.)
    ended = [threading.Event() for _ in units]
    broken: list[Exception] = []  # what stopped a worker outside a point (a farm's coordinator gone)
    for unit, done in zip(units, ended):
        threading.Thread(
            target=_work, args=(unit, queues[unit.board.name], steps, stop, done, broken), name=unit.name, daemon=True
        ).start()
    builds = ThreadPoolExecutor(max_workers=build_workers or os.cpu_count() or 1, thread_name_prefix="build")
    try:
        futures = {builds.submit(steps.build, job): job for job in jobs}
        for future in as_completed(futures):
            queues[futures[future].board.name].put((futures[future], future))
        _wait(ended)
        if broken:
            raise broken[0]
    except BaseException:
        stop.set()
        builds.shutdown(wait=True, cancel_futures=True)
        _wait(ended)
        raise
    finally:
        builds.shutdown(wait=False)


class _PointQueue:
    """The built points of one board kind; empty for good once every point of the kind is finished."""

    def __init__(self, points: int):
        self._items: queue.Queue = queue.Queue()
        self._unfinished = points
        self._lock = threading.Lock()

    def put(self, item) -> None:
        self._items.put(item)

    def get(self, stop: threading.Event):
        """The next point; None once all are finished or the sweep stops."""
        while not stop.is_set():
            if self.all_finished():
                return None
            try:
                return self._items.get(timeout=_JOIN_POLL_S)
            except queue.Empty:
                continue
        return None

    def finished(self) -> None:
        with self._lock:
            self._unfinished -= 1

    def all_finished(self) -> bool:
        with self._lock:
            return self._unfinished == 0


def _wait(events: list[threading.Event]) -> None:
    for event in events:
        while not event.wait(_JOIN_POLL_S):
            pass


def _work(
    unit: BoardUnit,
    points: _PointQueue,
    steps: Steps,
    stop: threading.Event,
    ended: threading.Event,
    broken: list[Exception],
) -> None:
    try:
        _take_points(unit, points, steps, stop)
    except Exception as err:  # not a point's failure (those are rows): the sweep stops, resumable
        broken.append(err)
        stop.set()
    finally:
        try:
            if unit.lease is not None:
                unit.lease.close()
        finally:
            ended.set()


def _take_points(unit: BoardUnit, points: _PointQueue, steps: Steps, stop: threading.Event) -> None:
    while True:
        # A farm worker takes a point only once it holds a place: one waiting its turn (or skipping dead
        # places) holds no point another worker could measure.
        if unit.lease is not None and not unit.lease.ready(stop, until=points.all_finished):
            return
        if (item := points.get(stop)) is None:
            return
        job, built = item
        try:
            row = steps.measure(job, unit, built.result())
        except Interrupted:
            return  # the sweep is stopping: nothing half-measured is recorded
        except Requeue:
            points.put(item)  # another unit, or this one on its next place, measures it
            continue
        except Exception as err:  # a build failure, or a bug: still a row, and the sweep goes on
            stage = getattr(built.exception(), "stage", Stage.BUILD) if built.exception() else Stage.RUN
            row = replace(job.row).fail(stage, err)
            if stage == Stage.RUN:
                row.error += " | " + traceback.format_exc(limit=-3).replace("\n", " ")
        if not stop.is_set():
            steps.finish(job, row)
            points.finished()
        if unit.lease is not None:
            unit.lease.measured()  # past its turn's length, the place goes back for others
