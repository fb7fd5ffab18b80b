"""The lab's board farm, through labgrid: find places by tag, reserve one (waiting our turn), acquire, release.

labgrid's coordinator knows the places (a board and what reaches it) and who
holds them; one exporter per host serves the boards' serial ports (ser2net)
and probes. This module is the one place the harness talks to it, through
labgrid's own client session (gRPC, asyncio) run on a thread of its own, so
the harness's board workers can call it from their threads.

Every harness run holds places under its own name, `HOST/USER.harness-<id>`,
where the id comes from the run directory: a run that crashed comes back
under the same name and releases what it held (`release_held`), and two runs
never take each other's places for their own.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from labgrid.remote.client import ClientSession
from labgrid.remote.common import Reservation, ReservationState
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
from labgrid.util.proxy import proxymanager

from harness.device.link import DEFAULT_BAUD, DeviceError

DEFAULT_PORT = 20408  # labgrid's coordinator port
POLL_S = 1.0  # how often a waiting reservation is polled (it expires after 60 s unpolled)
CALL_TIMEOUT_S = 30.0
SET_ASIDE_S = 60.0  # how long a place found dead stays reserved by us, unused, before it is looked at again
GDB_SERVER = "NetworkGDBServer"  # the resource an exporter declares for an emulated board's gdb stub


class FarmError(DeviceError):
    """The coordinator is unreachable, refused a request, or a place lacks what a board needs."""


@dataclass(frozen=True)
class PlaceState:
    """A place as the coordinator sees it now."""

    name: str
    tags: dict
    holder: str  # "" when free; else "HOST/USER" of whoever acquired it
    reserved: bool
    resources: tuple[tuple[str, str, bool], ...]  # (exporter/group/name, class, available)

    @property
    def live(self) -> bool:
        """Every resource the place matches is exported and available (its exporter is up)."""
        return bool(self.resources) and all(avail for _, _, avail in self.resources)

    @property
    def exporters(self) -> list[str]:
        return sorted({path.split("/")[0] for path, _, _ in self.resources})


def resources_of(place, resources: dict):
    """(exporter/group/name, class, available) of every exported resource the place matches.

    `resources` is the client session's exporter -> group -> name -> ResourceEntry. A deleted resource has no
    class: labgrid empties a known entry's data, but builds one with only defaults (acquired, avail) when the
    deletion is the first it hears of the resource, as a client that connects while an exporter goes away does.
    """
    for exporter, groups in resources.items():
        for group, entries in groups.items():
            for name, entry in entries.items():
                cls = entry.data.get("cls")
                if cls and place.hasmatch((exporter, group, cls, name)):
                    yield f"{exporter}/{group}/{name}", cls, bool(entry.avail)


@dataclass(frozen=True)
class PlaceAccess:
    """How to reach the board of an acquired place."""

    place: str
    serial_url: str  # a pyserial URL: socket://host:port (raw TCP) or rfc2217://host:port (ser2net)
    baudrate: int
    gdb: tuple[str, int] | None  # an emulated board's gdb stub, through which it is flashed
    exporter: str


def holder_name(run_dir: Path) -> str:
    """The name this run holds places under; the same for every run of one run directory."""
    run = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}/{getpass.getuser()}.harness-{run}"


def coordinator_address(address: str = "") -> str:
    """The address given, else LG_COORDINATOR's, as HOST:PORT."""
    address = address or os.environ.get("LG_COORDINATOR", "")
    if not address:
        raise FarmError("no farm coordinator: pass --farm HOST:PORT, set [farm] address, or LG_COORDINATOR")
    return proxymanager.get_grpc_address(address, default_port=DEFAULT_PORT)


class _Session(ClientSession):
    """labgrid's client session under our holder name instead of the login's."""

    holder = ""

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        # gRPC shares one connection among a process's channels to one address, and the coordinator takes a
        # connection for one client: a second session in this process (a test, a tool) needs its own.
        self.channel = grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])
        self.stub = type(self.stub)(self.channel)

    def gethostname(self):
        return self.holder.split("/", 1)[0]

    def getuser(self):
        return self.holder.split("/", 1)[1]


_loop: asyncio.AbstractEventLoop | None = None
_loop_guard = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for labgrid, on a thread of its own (gRPC's asyncio layer takes one loop)."""
    global _loop
    with _loop_guard:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="labgrid", daemon=True).start()
        return _loop


class Farm:
    """A connection to a coordinator; thread-safe (each call runs on the labgrid event loop)."""

    def __init__(self, address: str, holder: str, connect_timeout: float = 10.0):
        self.address = coordinator_address(address)
        self.holder = holder
        self._loop = _event_loop()
        self._session = self._call(self._start(), connect_timeout)
        self._set_aside: dict[str, tuple[str, float]] = {}  # dead place -> (its reservation, when to look again)
        self._set_aside_lock = threading.Lock()

    async def _start(self) -> _Session:
        session = _Session(self.address, self._loop)
        session.holder = self.holder
        try:
            await asyncio.wait_for(session.start(), CALL_TIMEOUT_S)
        except Exception as err:
            raise FarmError(f"farm coordinator {self.address} unreachable: {err or type(err).__name__}") from None
        return session

    def close(self) -> None:
        for token, _ in list(self._set_aside.values()):
            self.cancel(token)
        try:
            self._call(self._session.stop(), 5)
            self._call(self._session.close(), 5)
        except Exception:
            pass  # a coordinator that went away: nothing left to close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, coroutine, timeout: float = CALL_TIMEOUT_S):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except grpc.aio.AioRpcError as err:
            raise FarmError(f"farm coordinator {self.address}: {err.details()}") from None
        except TimeoutError:
            future.cancel()
            raise FarmError(f"farm coordinator {self.address} did not answer within {timeout:g} s") from None

    async def _rpc(self, method: str, request):
        return await getattr(self._session.stub, method)(request)

    # --- what the coordinator knows ---------------------------------------------------------------

    def places(self, tags: dict | None = None) -> list[PlaceState]:
        """Every place (with all of `tags`), by name."""
        return self._call(self._places(tags or {}))

    async def _places(self, tags: dict) -> list[PlaceState]:
        await self._session.sync_with_coordinator()
        states = []
        for name, place in sorted(self._session.places.items()):
            if tags.items() <= place.tags.items():
                states.append(
                    PlaceState(
                        name,
                        dict(place.tags),
                        place.acquired or "",
                        bool(place.reservation),
                        tuple(resources_of(place, self._session.resources)),
                    )
                )
        return states

    def access(self, place_name: str) -> PlaceAccess:
        """The serial port (and gdb stub) of a place this harness acquired."""
        return self._call(self._access(place_name))

    async def _access(self, place_name: str) -> PlaceAccess:
        await self._session.sync_with_coordinator()
        place = self._session.places.get(place_name)
        if place is None or place.acquired != self.holder:
            raise FarmError(f"place '{place_name}' is not held by this run ({self.holder})")
        if not place.acquired_resources:
            raise FarmError(f"place '{place_name}' has no resources now (its exporter is down?)")
        found = {}
        for exporter, group, cls, name in place.acquired_resources:
            entry = self._session.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is None or not entry.data or not entry.avail:
                raise FarmError(
                    f"place '{place_name}': {exporter}/{group}/{cls}/{name} is gone (exporter {exporter} down?)"
                )
            found[cls] = (exporter, entry.params)
        if "NetworkSerialPort" not in found:
            raise FarmError(
                f"place '{place_name}' has no serial port (NetworkSerialPort); it has "
                f"{', '.join(found) or 'no resources'}"
            )
        exporter, serial_port = found["NetworkSerialPort"]
        scheme = "socket" if serial_port.get("protocol", "rfc2217") == "raw" else "rfc2217"
        gdb = found.get(GDB_SERVER)
        return PlaceAccess(
            place_name,
            f"{scheme}://{serial_port['host']}:{serial_port['port']}",
            int(serial_port.get("speed", DEFAULT_BAUD)),
            (gdb[1]["host"], int(gdb[1]["port"])) if gdb else None,
            exporter,
        )

    # --- taking turns -----------------------------------------------------------------------------

    def reserve(self, tags: dict, stop: threading.Event, until=lambda: False) -> tuple[str, str] | None:
        """Wait for a place with these tags; returns (reservation token, place name), not yet acquired.

        None if `stop` is set or `until()` comes true first (nothing left to measure).
        """
        token = self._call(self._create_reservation(tags))
        try:
            while not stop.is_set() and not until():
                self._tend_set_aside()
                reservation = self._call(self._poll(token))
                if reservation.state is ReservationState.allocated:
                    return token, reservation.allocations["main"][0]
                if reservation.state not in (ReservationState.waiting, ReservationState.allocated):
                    token = self._call(self._create_reservation(tags))  # expired or invalid: queue again
                stop.wait(POLL_S)
        except BaseException:
            self.cancel(token)
            raise
        self.cancel(token)
        return None

    async def _create_reservation(self, tags: dict) -> str:
        request = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=tags)}, prio=0.0)
        return (await self._session.stub.CreateReservation(request)).reservation.token

    async def _poll(self, token: str) -> Reservation:
        reply = await self._session.stub.PollReservation(pb.PollReservationRequest(token=token))
        return Reservation.from_pb2(reply.reservation)

    def set_aside(self, place: str, token: str) -> None:
        """Keep the reservation of a place found dead (released, never used), so it is not handed to us again.

        labgrid's coordinator hands a waiting reservation any free place whose tags match, whatever its
        exporter's state, and among several free ones picks the same one each time (the first of a set in its
        process): a dead place given back would come straight back to every worker of this run while live
        places stood free. `reserve` keeps the reservation polled (an unpolled one expires after 60 s) and
        lets it go once the place is live again, looked at every SET_ASIDE_S; `close` lets all go.
        """
        with self._set_aside_lock:
            self._set_aside[place] = (token, time.monotonic() + SET_ASIDE_S)

    def _tend_set_aside(self) -> None:
        with self._set_aside_lock:
            kept = dict(self._set_aside)
        due = [place for place, (_, look_at) in kept.items() if look_at <= time.monotonic()]
        live = {state.name for state in self.places() if state.live} if due else set()
        for place, (token, _) in kept.items():
            if place in live:
                self.cancel(token)
                self._forget_set_aside(place, token)
            elif place in due:
                self.set_aside(place, token)
            elif self._call(self._poll(token)).state not in (ReservationState.allocated, ReservationState.acquired):
                self._forget_set_aside(place, token)  # expired meanwhile (no worker was waiting to poll it)

    def _forget_set_aside(self, place: str, token: str) -> None:
        with self._set_aside_lock:
            if self._set_aside.get(place, ("",))[0] == token:
                del self._set_aside[place]

    def cancel(self, token: str) -> None:
        """Give up a reservation (the place it holds becomes free for others); quiet if it is gone already."""
        try:
            self._call(self._rpc("CancelReservation", pb.CancelReservationRequest(token=token)))
        except FarmError:
            pass

    def acquire(self, place_name: str) -> None:
        self._call(self._acquire(place_name))

    async def _acquire(self, place_name: str) -> None:
        await self._session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=place_name))
        await self._session.sync_with_coordinator()

    def release(self, place_name: str) -> None:
        """Release a place if this run holds it."""
        self._call(self._release(place_name))

    async def _release(self, place_name: str) -> None:
        await self._session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=place_name, fromuser=self.holder))
        await self._session.sync_with_coordinator()

    def release_held(self) -> list[str]:
        """Release every place, and cancel every reservation, a crashed run of ours left behind."""
        held = [place.name for place in self.places() if place.holder == self.holder]
        for name in held:
            self.release(name)
        reply = self._call(self._rpc("GetReservations", pb.GetReservationsRequest()))
        for reservation in reply.reservations:
            if reservation.owner == self.holder:
                self.cancel(reservation.token)
        return held


LOST_CHECK_S = 2.0  # how long a failed link waits for the coordinator to notice a dead exporter
# ... and before a point's last failure is recorded: the coordinator notices a hung exporter or a network
# partition only when its keepalive runs out (23-25 s measured here), a killed one at once.
KEEPALIVE_S = 30.0


class PlaceLease:
    """One farm worker's hold on a place of its board kind: taken when needed, given back after N points.

    Giving the place back after `points_per_turn` points lets other clients
    waiting for this kind have their turn; the worker then queues again.
    """

    def __init__(self, farm: Farm, board: str, points_per_turn: int, on_event=lambda kind, **fields: None):
        self.farm, self.board, self.points_per_turn, self.on_event = farm, board, points_per_turn, on_event
        self._held: tuple[str, str] | None = None  # (reservation token, place)
        self._access: PlaceAccess | None = None
        self._points = 0

    def ready(self, stop: threading.Event, until=lambda: False) -> bool:
        """Hold a usable place, reserving and acquiring one (waiting our turn) if none is held.

        False if `stop` is set or `until()` comes true first. A place handed to us whose exporter is gone is
        set aside (Farm.set_aside) and the next is asked for at once; this holds no point meanwhile.
        """
        while self._access is None:
            reserved = self.farm.reserve({"board": self.board}, stop, until)
            if reserved is None:
                return False
            self._held = reserved
            try:
                self.farm.acquire(reserved[1])
                self._access = self.farm.access(reserved[1])
            except FarmError as err:
                self.on_event("place_unusable", place=reserved[1], error=str(err))
                self.set_aside()
                continue
            self._points = 0
            self.on_event("place_acquired", place=reserved[1], exporter=self._access.exporter)
        return True

    @property
    def access(self) -> PlaceAccess:
        """How to reach the held place's board (after ready())."""
        if self._access is None:
            raise FarmError(f"no place of board '{self.board}' is held")
        return self._access

    @property
    def place(self) -> str:
        """The place held now; "" if none."""
        return self._held[1] if self._held else ""

    def measured(self) -> None:
        """One point done on the held place; past the turn's length, the place goes back."""
        self._points += 1
        if self._points >= self.points_per_turn:
            self.give_back()

    def lost(self, patience: float = LOST_CHECK_S, stop: threading.Event | None = None) -> bool:
        """Whether the held place's exporter went away, giving the coordinator `patience` seconds to notice."""
        if self._held is None:
            return False
        deadline = time.monotonic() + patience
        while stop is None or not stop.is_set():
            try:
                states = [state for state in self.farm.places() if state.name == self._held[1]]
            except FarmError:
                return True  # the coordinator is gone too: nothing measured here can be trusted to finish
            if not states or not states[0].live:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return False

    def set_aside(self) -> None:
        """The held place is dead: release it but keep its reservation, so it is not handed to this run again."""
        if self._held is None:
            return
        token, place, _ = self._release()
        self.farm.set_aside(place, token)
        self.on_event("place_set_aside", place=place)

    def give_back(self) -> None:
        if self._held is None:
            return
        token, place, acquired = self._release()
        self.farm.cancel(token)
        if acquired:
            self.on_event("place_released", place=place)

    def _release(self) -> tuple[str, str, bool]:
        """Release the held place and hold nothing; (its reservation, the place, whether it was acquired)."""
        token, place = self._held
        acquired, self._held, self._access = self._access is not None, None, None
        try:
            self.farm.release(place)
        except FarmError as err:
            self.on_event("place_release_failed", place=place, error=str(err))
        return token, place, acquired

    close = give_back
