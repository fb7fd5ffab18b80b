"""A labgrid farm on this machine, all on 127.0.0.1: a coordinator and exporter "hosts" serving emulated boards.

Each host is one process group: a labgrid exporter and one `harness farm emulate` service per board (QEMU with
its UART and gdb stub on loopback ports). Killing a host's group is a host that died: its exporter, its
services and their QEMUs go at once. Used by tests/test_farm.py and tests/bench_farm.py.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
BOARD = "mps2_an386"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Host:
    name: str
    boards: list[tuple[int, int]]  # (uart port, gdb port) per board
    group: subprocess.Popen | None = None  # a shell leading the host's process group

    def places(self) -> list[str]:
        return [f"{self.name}-{number}" for number in range(1, len(self.boards) + 1)]


class FarmLab:
    def __init__(self, directory: Path, hosts: dict[str, int]):
        """hosts: exporter name -> number of emulated boards it serves."""
        self.directory = directory
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.hosts = {
            name: Host(name, [(free_port(), free_port()) for _ in range(count)]) for name, count in hosts.items()
        }
        self.coordinator: subprocess.Popen | None = None

    # --- processes ---------------------------------------------------------------------------------

    def start(self) -> FarmLab:
        (self.directory / "coordinator").mkdir(parents=True, exist_ok=True)
        self.coordinator = self._spawn(
            [BIN / "labgrid-coordinator", "--listen", self.address],
            self.directory / "coordinator",
            "coordinator.log",
            start_new_session=True,
        )
        self._wait_for_port(self.port)
        for host in self.hosts.values():
            self.start_host(host.name)
        for host in self.hosts.values():
            for place in host.places():
                self.client("-p", place, "create")
                self.client("-p", place, "add-match", f"{host.name}/{place}/*")
                self.client("-p", place, "set-tags", f"board={BOARD}")
        self.wait_until_live(self.all_places())
        return self

    def start_host(self, name: str) -> None:
        host = self.hosts[name]
        config = self.directory / f"{name}.yaml"
        config.write_text(
            "".join(
                f"""{place}:
  NetworkSerialPort:
    host: 127.0.0.1
    port: {uart}
    speed: 115200
    protocol: raw
  NetworkGDBServer:
    host: 127.0.0.1
    port: {gdb}
"""
                for place, (uart, gdb) in zip(host.places(), host.boards)
            )
        )
        # One shell per host, leading a process group of its own: the exporter and the emulator services.
        commands = [
            [
                BIN / "labgrid-exporter",
                "-c",
                self.address,
                "--name",
                name,
                "--hostname",
                "127.0.0.1",
                config,
                f"{name}-exporter.log",
            ]
        ]
        commands += [
            [
                sys.executable,
                "-m",
                "harness",
                "farm",
                "emulate",
                BOARD,
                "--uart",
                f"127.0.0.1:{uart}",
                "--gdb",
                f"127.0.0.1:{gdb}",
                "--log",
                self.directory / f"{place}-qemu.log",
                f"{place}.log",
            ]
            for place, (uart, gdb) in zip(host.places(), host.boards)
        ]
        script = " ".join(f"{shlex.join(map(str, argv[:-1]))} >>{shlex.quote(argv[-1])} 2>&1 &" for argv in commands)
        host.group = self._spawn(
            ["sh", "-c", f"cd {shlex.quote(str(self.directory))} && {script} wait"],
            self.directory,
            f"{name}.log",
            start_new_session=True,
        )
        for _uart, gdb in host.boards:
            self._wait_for_port(gdb)

    def kill_host(self, name: str) -> None:
        """The host dies at once: exporter, emulator services and QEMUs, by SIGKILL."""
        host = self.hosts[name]
        try:
            os.killpg(host.group.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # killed before
        host.group.wait(10)

    def freeze_host(self, name: str) -> None:
        """The host hangs, or the network to it drops: its processes stop (SIGSTOP) with their sockets open."""
        os.killpg(self.hosts[name].group.pid, signal.SIGSTOP)

    def stop(self) -> None:
        for host in self.hosts.values():
            if host.group is not None and host.group.poll() is None:
                os.killpg(host.group.pid, signal.SIGTERM)  # the services stop their QEMUs on the way out
                host.group.wait(10)
        if self.coordinator is not None:
            self.coordinator.terminate()
            self.coordinator.wait(10)

    def _spawn(self, argv, cwd: Path, log: str, **options) -> subprocess.Popen:
        with open(self.directory / log, "ab") as out:
            return subprocess.Popen(
                [str(a) for a in argv],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"},
                **options,
            )

    @staticmethod
    def _wait_for_port(port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")

    # --- the coordinator's view --------------------------------------------------------------------

    def client(self, *args) -> str:
        proc = subprocess.run(
            [str(BIN / "labgrid-client"), "-x", self.address, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"labgrid-client {' '.join(map(str, args))}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def all_places(self) -> list[str]:
        return [place for host in self.hosts.values() for place in host.places()]

    def holders(self) -> dict[str, str]:
        """place -> who holds it ("" if free)."""
        from harness.device.farm import Farm

        with Farm(self.address, "lab/observer") as farm:
            return {place.name: place.holder for place in farm.places()}

    def wait_until_dead(self, places: list[str], timeout: float = 60) -> None:
        """Until the coordinator sees none of these places live (it notices a killed exporter at once)."""
        self._wait_until(lambda live: not set(places) & live, f"places still live after {timeout} s", timeout)

    def wait_until_live(self, places: list[str], timeout: float = 30) -> None:
        self._wait_until(lambda live: set(places) <= live, f"places not all live after {timeout} s", timeout)

    def _wait_until(self, done, error: str, timeout: float) -> None:
        """Until done(names of the live places) is true."""
        from harness.device.farm import Farm

        deadline = time.monotonic() + timeout
        with Farm(self.address, "lab/observer") as farm:
            while time.monotonic() < deadline:
                live = {place.name for place in farm.places() if place.live}
                if done(live):
                    return
                time.sleep(0.2)
        raise TimeoutError(f"{error}: live are {sorted(live)}")
