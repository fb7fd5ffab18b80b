"""The host side of the benchmark protocol (docs/design.md, version 1)."""
from __future__ import annotations

from dataclasses import dataclass

from harness.device.link import DeviceError, SerialLink

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Hello:
    protocol: int
    model_id: str
    board: str
    timer_unit: str      # "instructions" | "cycles" | "ns"
    timer_source: str
    clock_hz: int
    input_bytes: int
    output_bytes: int
    layers: int
    arena_bytes: int


class BoardClient:
    def __init__(self, link: SerialLink, timeout: float):
        self.link = link
        self.timeout = timeout

    def _command(self, line: str, payload: bytes = b"", timeout: float | None = None) -> str:
        name = line.split()[0]
        self.link.write(line.encode() + b"\n" + payload)
        while True:
            reply = self.link.read_line(timeout or self.timeout)
            if reply.startswith(f"ok {name}"):
                return reply[len(f"ok {name}"):].strip()
            if reply.startswith("err"):
                raise DeviceError(f"board {self.link.url} refused '{line}': {reply} (log: {self.link.log_path})")
            # anything else is boot noise or a stale reply: it is in the log, skip it

    def hello(self) -> Hello:
        # A bare newline first ends any half line a previous session left in the board's buffer.
        self.link.write(b"\n")
        fields = dict(item.split("=", 1) for item in self._command("hello").split())
        try:
            hello = Hello(
                protocol=int(fields["proto"]), model_id=fields["model"], board=fields["board"],
                timer_unit=fields["unit"], timer_source=fields["timer"], clock_hz=int(fields["clock"]),
                input_bytes=int(fields["in"]), output_bytes=int(fields["out"]),
                layers=int(fields["layers"]), arena_bytes=int(fields["arena"]))
        except (KeyError, ValueError) as err:
            raise DeviceError(f"board {self.link.url} sent a malformed hello ({err}): {fields}") from None
        if hello.protocol != PROTOCOL_VERSION:
            raise DeviceError(f"board {self.link.url} speaks protocol {hello.protocol}, the harness {PROTOCOL_VERSION}: re-flash it")
        return hello

    def infer(self, sample: bytes) -> bytes:
        return bytes.fromhex(self._command("infer", payload=sample))

    def bench(self, warmup: int, runs: int) -> list[int]:
        return [int(t) for t in self._command(f"bench {warmup} {runs}", timeout=self.timeout * (warmup + runs)).split()]

    def layers(self) -> list[int]:
        return [int(t) for t in self._command("layers").split()]

    def stack(self) -> tuple[int, int]:
        fields = dict(item.split("=", 1) for item in self._command("stack").split())
        return int(fields["used"]), int(fields["total"])

    def exit(self) -> None:
        self._command("exit")
