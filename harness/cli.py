"""The `harness` command line."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from harness.build import PROJECT_DIR

def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: one line, non-zero exit, no traceback."""
    from harness.build import BuildError
    from harness.compiler import CompileError
    from harness.config import ConfigError
    from harness.device.link import DeviceError
    from harness.prune.masks import PruningError
    from harness.sweep import SweepFailed
    from harness.toolchain import ToolchainError

    return (BuildError, CompileError, ConfigError, DeviceError, PruningError, SweepFailed, ToolchainError, KeyError)


def _csv(kind):
    return lambda text: tuple(kind(v.strip()) for v in text.split(",") if v.strip())


def _sweep(args) -> int:
    from harness.config import load_config
    from harness.sweep import run_sweep

    config = load_config(args.config, targets=args.targets, kernels=args.kernels, boards=args.boards,
                         model=args.model, data=args.data)
    if args.port:
        from dataclasses import replace
        config = replace(config, device=replace(config.device, port=args.port))
    started = time.perf_counter()
    run_dir = run_sweep(config, Path(args.results))
    print(f"done in {time.perf_counter() - started:.0f} s: results in {run_dir}")
    return 0


def _hello(args) -> int:
    from harness.device.client import BoardClient
    from harness.device.link import SerialLink

    log = Path(args.log)
    with SerialLink(args.port, log) as link:
        hello = BoardClient(link, args.timeout).hello()
    print(" ".join(f"{k}={v}" for k, v in hello.__dict__.items()))
    return 0


def _boards(args) -> int:
    from harness.device.boards import BOARDS

    for board in BOARDS.values():
        print(f"{board.name:12s} {board.core:10s} {board.transport}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="prune, compile, build and measure a sweep on boards")
    sweep.add_argument("--config", default=str(PROJECT_DIR / "configs" / "digits.toml"), help="sweep TOML file")
    sweep.add_argument("--model", help="reference model name, a .keras file, or an int8 .tflite (no pruning)")
    sweep.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test (for --model files)")
    sweep.add_argument("--targets", type=_csv(float), help="sparsity targets, e.g. 0,0.5,0.9")
    sweep.add_argument("--kernels", type=_csv(str), help="kernels, e.g. dense,csr")
    sweep.add_argument("--boards", type=_csv(str), help="boards, e.g. mps2_an386,host")
    sweep.add_argument("--port", help="serial port or URL (emulated boards: a TCP port number)")
    sweep.add_argument("--results", default=str(PROJECT_DIR / "results"), help="where run folders go")
    sweep.set_defaults(run=_sweep)

    boards = commands.add_parser("boards", help="list the boards the harness knows")
    boards.set_defaults(run=_boards)

    hello = commands.add_parser("hello", help="ask a running board who it is (is it alive, which firmware?)")
    hello.add_argument("--port", required=True, help="serial device or pyserial URL, e.g. socket://127.0.0.1:4444")
    hello.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    hello.add_argument("--log", default="serial.log", help="file that records every byte exchanged")
    hello.set_defaults(run=_hello)

    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so sessions stop their emulators on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return args.run(args)
    except _user_errors() as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
