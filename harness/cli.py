"""The `harness` command line.

Every command exits 0 when all went well, 1 when some points failed to measure
(their rows say why), 2 for bad input or usage (one line on stderr, before
any work starts) and 130 when interrupted (README: Exit codes).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from harness.device.link import DEFAULT_BAUD
from harness.paths import project_file, results_dir

EXIT_POINTS_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own error is the usage and then the message: one line here, as every other bad input.
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _points_failed() -> type[Exception]:
    from harness.orchestrator import SweepFailed

    return SweepFailed


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: one line, exit 2, no traceback."""
    from harness.build import BuildError
    from harness.compiler import CompileError
    from harness.config import ConfigError
    from harness.device.link import DeviceError
    from harness.pointstore import RunBusy
    from harness.prune.masks import PruningError
    from harness.quantize import ConversionError
    from harness.toolchain import ToolchainError

    return (
        BuildError,
        CompileError,
        ConfigError,
        ConversionError,
        DeviceError,
        PruningError,
        RunBusy,
        ToolchainError,
        KeyError,
    )


def _csv(kind):
    return lambda text: tuple(kind(v.strip()) for v in text.split(",") if v.strip())


def _number(text: str) -> int | float | str:
    """A number, as TOML would read it; other text is left for the config's schema to refuse by name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _config(args, flags: dict[str, str] | None = None, manifest: Path | None = None, **overrides):
    """The sweep's config file (or a run's manifest) with the command line's flags over it, all through the
    config's schema."""
    import json

    from harness.config import ConfigError, config_from_dict, load_config

    address = None
    if args.farm:
        from harness.device.farm import coordinator_address

        address = coordinator_address("" if args.farm == _FROM_ENVIRONMENT else args.farm)
    flags = {"device.port": "--port", "farm.address": "--farm", **(flags or {})}
    overrides.update(device={"port": args.port}, farm={"address": address})
    if manifest is None:
        return load_config(args.config, flags, **overrides)
    try:
        values = json.loads(manifest.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{manifest.parent} is no run folder with a manifest.json ({err})") from None
    return config_from_dict(values, str(manifest), flags, **overrides)


def _sweep(args) -> int:
    config = _config(
        args,
        targets=args.targets,
        kernels=args.kernels,
        boards=args.boards,
        model=args.model,
        data=args.data,
        task=args.task,
        name=args.name,
    )
    _run(config, args)
    return 0


def _run(config, args, **bench):
    """Run a sweep with the bench options of the command line; returns its run directory."""
    from harness.orchestrator import BenchOptions, run_sweep

    faults = _fault_plan(args.inject_faults, config) if args.inject_faults else None
    _check_writable(Path(args.results), "--results")
    options = BenchOptions(parallel=args.parallel, faults=faults, fresh=args.fresh, **bench)
    started = time.perf_counter()
    run_dir = run_sweep(config, Path(args.results), bench=options)
    print(f"done in {time.perf_counter() - started:.0f} s: results in {run_dir}")
    return run_dir


def _fault_plan(spec: str, config):
    """The fault proxy's plan, for emulated boards on TCP only: the proxy sits in front of QEMU's UART."""
    import dataclasses

    from harness.config import ConfigError, FaultLimits, check_flag
    from harness.device.boards import get_board
    from harness.device.faults import FaultPlan

    plan = FaultPlan.parse(spec)
    check_flag("--inject-faults", FaultLimits, dataclasses.asdict(plan))
    if config.farm.address:
        raise ConfigError(
            "--inject-faults: the fault proxy runs in front of local emulated boards, not a farm's: leave out --farm"
        )
    for name in config.boards:
        if get_board(name).transport != "qemu-tcp":
            raise ConfigError(
                f"--inject-faults: board '{name}' is not emulated over TCP, and the fault proxy "
                "sits in front of QEMU's UART only: measure on mps2_an386 or another QEMU board"
            )
    return plan


def _check_writable(path: Path, flag: str) -> None:
    """A folder the command may write into (it need not exist yet), tried before any work is done."""
    from harness.config import ConfigError

    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, not a folder: name a folder")
    try:
        # Root may write where the permission bits say no, and nobody on a read-only mount: only trying tells.
        tempfile.TemporaryDirectory(dir=existing, prefix=".harness-probe-").cleanup()
    except OSError as err:
        raise ConfigError(
            f"{flag} {path}: cannot write in {existing} ({err.strerror}): name a folder you may write in"
        ) from None


def _measure(args) -> int:
    from harness.results import read_results_csv

    config = _config(
        args,
        flags={"targets": "--target", "kernels": "--kernel", "boards": "--board"},
        targets=(args.target,),
        kernels=(args.kernel,),
        boards=(args.board,),
        model=args.model,
        data=args.data,
        name=f"measure-{args.board}",
    )
    run_dir = _run(config, args)
    row = read_results_csv(run_dir / "results.csv").iloc[0]
    print(
        f"{row.board}: {row.kernel} at sparsity {row.achieved_sparsity:.3f}: median {row.latency_median:.0f} "
        f"{row.latency_unit} ({row.timing_source}), flash {row.flash_total} B, static RAM {row.sram_static} B, "
        f"stack {row.stack_used} B, accuracy on the board {row.accuracy_device:.3f}"
    )
    return 0


def _rerun(args) -> int:
    from harness.config import ConfigError
    from harness.report.runs import table_problem
    from harness.results import read_results_csv

    run_dir = Path(args.run_dir)
    config = _config(args, manifest=run_dir / "manifest.json")
    table = run_dir / "results.csv"
    if problem := table_problem(table):
        raise ConfigError(f"{table} {problem}: run its sweep again to rewrite it (measured points are reused)")
    frame = read_results_csv(table)
    if outside := sorted(number for number in args.point or () if not 1 <= number <= len(frame)):
        raise ConfigError(f"--point {outside[0]}: {run_dir} has points 1..{len(frame)} (the rows of its results.csv)")
    points = set(args.point or ())
    if args.failed:
        points |= {number for number, status in enumerate(frame.status, start=1) if status != "ok"}
    if not points:
        raise ConfigError("name the points to measure again: --point N (its row in results.csv, from 1) or --failed")
    args.results = str(run_dir.parent)
    _run(config, args, run_dir=run_dir, remeasure=frozenset(points))
    return 0


def _report(args) -> int:
    from harness.report import build_report, write_report

    run_dirs = [Path(p) for p in args.run_dirs]
    out = Path(args.out) if args.out else _report_dir(run_dirs)
    _check_writable(out, "--out")
    report = build_report(run_dirs, args.accuracy_floor)
    if not report.runs:
        print("error: nothing to report: " + "; ".join(report.notes), file=sys.stderr)
        return EXIT_BAD_INPUT
    files = write_report(report, out)
    for note in report.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"report: {files.html} ({len(report.plots)} plots as PNG and SVG beside it), summary: {files.markdown}")
    if not report.plots:
        print("error: nothing could be drawn (see the warnings); the report lists why", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _report_dir(run_dirs: list[Path]) -> Path:
    """One run's report goes into its directory; a comparison gets a directory of its own beside the first run."""
    if len(run_dirs) == 1:
        return run_dirs[0]
    return run_dirs[0].parent / f"report-{time.strftime('%Y%m%d-%H%M%S')}"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1], e.g. 0.95 for 95 %")
    return value


def _kernels(args) -> int:
    from harness.kernel_bench.run import make_plan, run_kernel_bench
    from harness.kernel_bench.shapes import ShapeError

    try:
        plan = make_plan(args.shapes, args.sparsities, args.formats, args.board, args.parallel, args.fresh)
    except ShapeError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out) if args.out else results_dir() / f"kernels-{time.strftime('%Y%m%d')}"
    _check_writable(out, "--out")
    started = time.perf_counter()
    files = run_kernel_bench(plan, out)
    print(
        f"done in {time.perf_counter() - started:.0f} s: table {files.csv}, break-even sparsities "
        f"{files.break_even}, summary {files.summary}, plot {files.plots[0]}"
    )
    for failure in files.failures:
        print(f"failed: {failure}", file=sys.stderr)
    if files.kernels_changed:
        print(
            "warning: firmware/kernels changed during the run, so its rows may mix kernel versions: run the same "
            "command again once they are settled",
            file=sys.stderr,
        )
    return EXIT_POINTS_FAILED if files.failures or files.kernels_changed else 0


def _cost_model(args) -> int:
    from harness.kernel_bench.cost_curves import main as cost_curves_main

    return cost_curves_main(args.rest)


def _hello(args) -> int:
    from harness.device.client import BoardClient
    from harness.device.link import SerialLink

    log = Path(args.log)
    with SerialLink(args.port, log, args.baud) as link:
        hello = BoardClient(link, args.timeout).hello()
    print(" ".join(f"{k}={v}" for k, v in hello.__dict__.items()))
    return 0


def _boards(args) -> int:
    from harness.device.boards import BOARDS

    for board in BOARDS.values():
        print(f"{board.name:14s} {board.core:14s} {board.transport:9s} {' '.join(board.usb)}")
    return 0


def _ports(args) -> int:
    from harness.device.ports import describe, find_ports

    ports = find_ports()
    for port, boards in ports:
        print(describe(port, boards))
    if not ports:
        print("no serial ports found")
    return 0


def _farm_list(args) -> int:
    from harness.device.farm import Farm, holder_name

    with Farm(args.farm, holder_name(Path.cwd())) as farm:
        places = farm.places()
        for place in places:
            tags = " ".join(f"{k}={v}" for k, v in sorted(place.tags.items())) or "-"
            state = (
                "down"
                if not place.live
                else (f"held by {place.holder}" if place.holder else "reserved" if place.reserved else "free")
            )
            print(f"{place.name:20s} {tags:28s} {state:40s} {', '.join(place.exporters) or 'no resources'}")
        if not places:
            print(f"no places on {farm.address}")
    return 0


def _farm_emulate(args) -> int:
    from harness.device.boards import get_board
    from harness.device.emulator_service import serve

    serve(get_board(args.board), args.uart, args.gdb, Path(args.log))
    return 0


def _monitor(args) -> int:
    from harness.device.link import SerialLink
    from harness.device.monitor import monitor

    with SerialLink(args.port, Path(args.log), args.baud) as link:
        monitor(link, args.seconds, say_hello=args.hello)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds, 0 or more")
    return value


_FROM_ENVIRONMENT = "LG_COORDINATOR"


def _add_bench_options(parser) -> None:
    parser.add_argument(
        "--port",
        help="serial port or URL (emulated boards: a TCP port number); several real boards: name=port,name=port",
    )
    parser.add_argument(
        "--parallel", type=_positive, default=1, help="instances of each emulated board measuring at once"
    )
    parser.add_argument("--fresh", action="store_true", help="measure again what the results cache already holds")
    parser.add_argument(
        "--inject-faults",
        default="",
        metavar="PLAN",
        help="for testing: a proxy in front of each "
        "emulated board drops, duplicates, corrupts and delays bytes and resets the board, e.g. "
        "rate=0.05,reset=0.005,delay=5,seed=1",
    )
    parser.add_argument(
        "--farm",
        nargs="?",
        const=_FROM_ENVIRONMENT,
        metavar="ADDRESS",
        help="measure on the "
        "places of a labgrid farm (coordinator HOST[:PORT]; alone: LG_COORDINATOR's) tagged "
        "board=<board> instead of local boards (docs/farm.md)",
    )
    parser.add_argument("--results", default=str(results_dir()), help="where run folders go")


# Over 60 lines: the whole command line is declared here, in --help's order, so each command reads as it prints.
def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (the reason is above)
    parser = _Parser(prog="harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's and its converter's output")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="prune, compile, build and measure a sweep on boards")
    sweep.add_argument("--config", default=str(project_file("configs/digits.toml")), help="sweep TOML file")
    sweep.add_argument(
        "--model", help="reference model name, a Keras file (.keras, .h5), or an int8 .tflite (no pruning)"
    )
    sweep.add_argument(
        "--data",
        help=".npz with x_test, y_test (and x_train, y_train for a Keras model; README: Your own model and data)",
    )
    sweep.add_argument("--targets", type=_csv(_number), help="sparsity targets, e.g. 0,0.5,0.9")
    sweep.add_argument("--kernels", type=_csv(str), help="weight formats and auto, e.g. dense,csr,delta4,auto")
    sweep.add_argument("--boards", type=_csv(str), help="boards, e.g. mps2_an386,host")
    sweep.add_argument(
        "--task",
        choices=("auto", "classification", "reconstruction"),
        help="what the model does (default: from the data set's y_test: class numbers or a reconstruction target)",
    )
    sweep.add_argument("--name", help="run name (default: the model's, from --model, or the config's)")
    _add_bench_options(sweep)
    sweep.set_defaults(run=_sweep)

    measure = commands.add_parser("measure", help="measure one model on one board")
    measure.add_argument("--board", required=True, help="a board from `harness boards`")
    measure.add_argument(
        "--model", help="reference model name, a Keras file (.keras, .h5), or an int8 .tflite (no pruning)"
    )
    measure.add_argument(
        "--data",
        help=".npz with x_test, y_test (and x_train, y_train for a Keras model; README: Your own model and data)",
    )
    measure.add_argument(
        "--kernel", default="csr", help="a weight format (dense, csr, delta4, bitmask, block4, nm) or auto"
    )
    measure.add_argument("--target", type=_number, default=0.0, help="sparsity to prune to (not for a .tflite)")
    measure.add_argument("--config", help="sweep TOML file for the other settings")
    _add_bench_options(measure)
    measure.set_defaults(run=_measure)

    rerun = commands.add_parser("rerun", help="measure points of a finished run again, in place")
    rerun.add_argument("run_dir", metavar="RUN_DIR", help="the run folder (results/<run>/)")
    rerun.add_argument("--point", type=int, action="append", help="a point's row in results.csv, from 1 (repeatable)")
    rerun.add_argument("--failed", action="store_true", help="every point that did not end ok")
    _add_bench_options(rerun)
    rerun.set_defaults(run=_rerun)

    report = commands.add_parser("report", help="plots, an HTML page and a Markdown summary of one or more runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (results/<run>/)")
    report.add_argument(
        "--out",
        help="where the report goes (default: the run directory; for several runs, a "
        "new report-<time> directory beside the first)",
    )
    report.add_argument(
        "--accuracy-floor",
        type=_fraction,
        help="accuracy (or anomaly AUC) on the device that counts "
        "as good enough, as a fraction, for the flash saved in the key figures (default: the dense "
        "model's less 0.01; ignored by an MSE-scored run, whose ceiling is dense's MSE x 1.05)",
    )
    report.set_defaults(run=_report)

    from harness.kernel_bench.shapes import DEFAULT_PRUNINGS, DEFAULT_SHAPES

    kernels = commands.add_parser(
        "kernels",
        help="micro-benchmark the kernels: single layers x sparsity x weight format on a board (docs/kernels.md)",
    )
    kernels.add_argument(
        "--shapes",
        type=_csv(str),
        default=DEFAULT_SHAPES,
        help="layer shapes, e.g. fc-256x256,conv3x3-16x16x16-32,conv1x1-16x16x64-64,dw3x3-16x16x64 (the default)",
    )
    kernels.add_argument(
        "--sparsities",
        type=_csv(str),
        default=DEFAULT_PRUNINGS,
        help=f"fractions pruned by magnitude and N:M patterns (default {','.join(DEFAULT_PRUNINGS)})",
    )
    kernels.add_argument(
        "--formats",
        type=_csv(str),
        help="weight formats (default: all the compiler has); dense is always measured, as the reference",
    )
    kernels.add_argument("--board", default="mps2_an386", help="a board from `harness boards`")
    kernels.add_argument("--out", help="output directory (default results/kernels-<date>)")
    kernels.add_argument(
        "--parallel", type=_positive, default=2, help="instances of an emulated board measuring at once"
    )
    kernels.add_argument("--fresh", action="store_true", help="measure again what the results cache already holds")
    kernels.set_defaults(run=_kernels)

    boards = commands.add_parser("boards", help="list the boards the harness knows")
    boards.set_defaults(run=_boards)

    ports = commands.add_parser("ports", help="list attached serial ports and the boards they look like")
    ports.set_defaults(run=_ports)

    farm = commands.add_parser(
        "farm", help="a labgrid board farm: its places, and emulated boards for it (docs/farm.md)"
    )
    farm_commands = farm.add_subparsers(dest="farm_command", required=True)
    places = farm_commands.add_parser("list", help="places with their tags, who holds them, and their exporters")
    places.add_argument(
        "--farm", default="", metavar="ADDRESS", help="coordinator HOST[:PORT] (default: LG_COORDINATOR)"
    )
    places.set_defaults(run=_farm_list)
    emulate = farm_commands.add_parser(
        "emulate",
        help="on an exporter host: run an emulated board for a place "
        "(QEMU, its UART and gdb stub on TCP ports), until stopped",
    )
    emulate.add_argument("board", help="an emulated board from `harness boards`, e.g. mps2_an386")
    emulate.add_argument(
        "--uart",
        required=True,
        metavar="HOST:PORT",
        help="where its UART listens (the place's NetworkSerialPort, protocol raw)",
    )
    emulate.add_argument(
        "--gdb",
        required=True,
        metavar="HOST:PORT",
        help="where its gdb stub listens, through which it is flashed (the place's NetworkGDBServer)",
    )
    emulate.add_argument("--log", default="emulator.log", help="QEMU's output")
    emulate.set_defaults(run=_farm_emulate)

    monitor = commands.add_parser("monitor", help="show what a board sends (frames decoded, other bytes as text)")
    monitor.add_argument("--port", required=True, help="serial device or pyserial URL")
    monitor.add_argument("--baud", type=_positive, default=DEFAULT_BAUD, help="baud rate (the board's monitor_speed)")
    monitor.add_argument("--seconds", type=_seconds, default=0, help="stop after this long (default: at Ctrl-C)")
    monitor.add_argument(
        "--hello", action="store_true", help="send a hello first (the benchmark firmware speaks only when spoken to)"
    )
    monitor.add_argument("--log", default="serial.log", help="file that records every byte received")
    monitor.set_defaults(run=_monitor)

    # Its own parser (harness/kernel_bench/cost_curves.py) reads the rest, so `harness cost-model --help` shows its
    # options.
    cost = commands.add_parser(
        "cost-model", add_help=False, help="measure and fit a board's cost curves for hardware-aware pruning"
    )
    cost.set_defaults(run=_cost_model)

    hello = commands.add_parser("hello", help="ask a running board who it is (is it alive, which firmware?)")
    hello.add_argument("--port", required=True, help="serial device or pyserial URL, e.g. socket://127.0.0.1:4444")
    hello.add_argument("--timeout", type=_seconds, default=5.0, help="seconds to wait for each attempt at an answer")
    hello.add_argument("--baud", type=_positive, default=DEFAULT_BAUD, help="baud rate (the board's monitor_speed)")
    hello.add_argument("--log", default="serial.log", help="file that records every byte exchanged")
    hello.set_defaults(run=_hello)

    args, args.rest = parser.parse_known_args(argv)
    if args.rest and args.command != "cost-model":
        parser.error(f"unrecognized arguments: {' '.join(args.rest)}")
    # TensorFlow and its converter print hundreds of lines on import and conversion: shown with -v only.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # SIGTERM unwinds like Ctrl-C, so sessions stop their emulators on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return args.run(args)
    except _points_failed() as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_POINTS_FAILED
    except _user_errors() as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
