"""Every bad input is refused up front (issue 13): exit code 2, one line on stderr naming the file, key or flag
and the fix, no traceback, no board process left, no file written.

The table runs the real command line: in this process (harness.cli.main, so each case costs no interpreter
and TensorFlow start-up) with the model cache pointed at an empty folder that must stay empty, and a few
cases again as a user runs them, in a process of their own. Validation must fail before any training or
build: a case that gets as far as preparing the models fails at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import PROJECT_DIR, run_harness

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

CLASSES, FEATURES = 10, 16


@pytest.fixture(scope="module")
def f(tmp_path_factory) -> SimpleNamespace:
    """Inputs good and bad: a small Keras classifier (.keras, .h5, int8 .tflite), data sets, a run folder."""
    import keras

    from harness.config import SweepConfig
    from harness.quantize import to_int8_tflite
    from harness.results import COLUMNS, ResultRow

    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, 64)
    inputs = keras.Input((FEATURES,), batch_size=1)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES, activation="softmax", name="dense")(inputs))
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    (d / "model.tflite").write_bytes(to_int8_tflite(model, x))
    weightless = keras.Input((FEATURES,), batch_size=1)
    keras.Model(weightless, keras.layers.Softmax()(weightless), name="weightless").save(d / "weightless.keras")

    def npz(name: str, **arrays) -> Path:
        values = {"x_train": x, "y_train": y, "x_test": x[:16], "y_test": y[:16], **arrays}
        np.savez(d / name, **{k: v for k, v in values.items() if v is not None})
        return d / name

    (d / "text.keras").write_text("not a model\n")
    (d / "text.h5").write_text("not a model\n")
    (d / "text.npz").write_text("x_test,y_test\n1,2\n")
    (d / "truncated.tflite").write_bytes((d / "model.tflite").read_bytes()[:600])
    (d / "empty.tflite").write_bytes(b"")
    (d / "model.onnx").write_bytes(b"onnx")
    np.save(d / "array.npy", x)
    (d / "array.npy").rename(d / "array.npz")
    (d / "a-file").write_text("")

    run = d / "runs" / "host-run"
    run.mkdir(parents=True)
    config = SweepConfig(name="host-run", targets=(0.0,), kernels=("dense", "csr"), boards=("host",))
    (run / "manifest.json").write_text(json.dumps({"run_id": run.name, "config": config.to_dict()}))
    rows = [ResultRow(run.name, "digits_cnn", 0.0, kernel, "host", "host") for kernel in config.kernels]
    table = (
        ",".join(COLUMNS)
        + "\r\n"
        + "".join(",".join(str(dataclasses.asdict(row)[c]) for c in COLUMNS) + "\r\n" for row in rows)
    )
    (run / "results.csv").write_text(table)
    cut = d / "runs" / "cut-run"
    cut.mkdir()
    (cut / "manifest.json").write_text((run / "manifest.json").read_text())
    (cut / "results.csv").write_text(table[: len(table) - 40])
    unknown = d / "runs" / "unknown-key-run"
    unknown.mkdir()
    values = config.to_dict()
    values["device"]["warmpu"] = 3
    (unknown / "manifest.json").write_text(json.dumps({"config": values}))
    (unknown / "results.csv").write_text(table)
    empty = d / "runs" / "empty-run"
    empty.mkdir()
    (empty / "results.csv").write_text("")
    return SimpleNamespace(
        dir=d,
        keras=d / "model.keras",
        h5=d / "model.h5",
        tflite=d / "model.tflite",
        good=npz("good.npz"),
        run=run,
        cut=cut,
        empty=empty,
        unknown=unknown,
        wrong_shape=npz("wrong-shape.npz", x_test=np.zeros((16, FEATURES + 1), np.float32)),
        scalar=npz("scalar.npz", x_test=np.float32(1), y_test=np.int64(1)),
        zero=npz("zero.npz", x_test=np.zeros((0, FEATURES), np.float32), y_test=np.zeros(0, np.int64)),
        label42=npz("label42.npz", y_test=np.full(16, 42)),
        label_minus1=npz("label-minus1.npz", y_test=np.full(16, -1)),
        nan=npz("nan.npz", x_test=np.where(np.eye(16, FEATURES) > 0, np.nan, x[:16]).astype(np.float32)),
        inf=npz("inf.npz", x_train=np.full((64, FEATURES), np.inf, np.float32)),
        no_y=npz("no-y.npz", y_test=None),
        short_y=npz("short-y.npz", y_test=y[:15]),
        fractional=npz("fractional.npz", y_test=np.full(16, 0.5)),
        texts=npz("texts.npz", x_test=np.full((16, FEATURES), "a")),
    )


def config(f, text: str) -> Path:
    path = f.dir / f"config-{abs(hash(text))}.toml"
    path.write_text(text)
    return path


def sweep(extra):
    """A sweep on the host board that gets nowhere near a board unless its input is good."""
    return lambda f: ["sweep", "--boards", "host", "--targets", "0", "--kernels", "dense", *extra(f)]


# (case, command line from the inputs, what its one line must say)
CASES = [
    # the config file: [sweep], [prune], [device], [farm] through the schema
    (
        "config: typo",
        lambda f: ["sweep", "--config", config(f, "[device]\nwarmpu = 3\n")],
        ["[device]", "unknown key 'warmpu' (did you mean 'warmup'?)"],
    ),
    (
        "config: unknown table",
        lambda f: ["sweep", "--config", config(f, "[devices]\nruns = 3\n")],
        ["unknown table [devices] (did you mean 'device'?)"],
    ),
    (
        "config: target not a number",
        lambda f: ["sweep", "--config", config(f, "[sweep]\ntargets = ['a']\n")],
        ["[sweep]", "'targets' item 1 must be float, got 'a'"],
    ),
    (
        "config: no targets",
        lambda f: ["sweep", "--config", config(f, "[sweep]\ntargets = []\n")],
        ["'targets' is empty"],
    ),
    (
        "config: target 1",
        lambda f: ["sweep", "--config", config(f, "[sweep]\ntargets = [0.5, 1.0]\n")],
        ["'targets' 1.0 is outside [0, 1)"],
    ),
    (
        "config: no kernels",
        lambda f: ["sweep", "--config", config(f, "[sweep]\nkernels = []\n")],
        ["'kernels' is empty"],
    ),
    (
        "config: kernel typo",
        lambda f: ["sweep", "--config", config(f, "[sweep]\nkernels = ['cssr']\n")],
        ["unknown kernel 'cssr' (did you mean 'csr'?)"],
    ),
    (
        "config: accuracy_samples -5",
        lambda f: ["sweep", "--config", config(f, "[device]\naccuracy_samples = -5\n")],
        ["[device]", "'accuracy_samples' must be at least 0"],
    ),
    (
        "config: warmup -1",
        lambda f: ["sweep", "--config", config(f, "[device]\nwarmup = -1\n")],
        ["'warmup' -1 is outside [0, 100]"],
    ),
    (
        "config: warmup 20000",
        lambda f: ["sweep", "--config", config(f, "[device]\nwarmup = 20000\n")],
        ["'warmup' 20000 is outside [0, 100]"],
    ),
    ("config: runs 0", lambda f: ["sweep", "--config", config(f, "[device]\nruns = 0\n")], ["'runs' 0 is outside"]),
    (
        "config: runs as text",
        lambda f: ["sweep", "--config", config(f, "[device]\nruns = '5'\n")],
        ["'runs' must be int, got '5'"],
    ),
    (
        "config: timeout_s 0",
        lambda f: ["sweep", "--config", config(f, "[device]\ntimeout_s = 0\n")],
        ["'timeout_s' 0.0 is outside (0, 3600]"],
    ),
    (
        "config: points_per_turn 0",
        lambda f: ["sweep", "--config", config(f, "[farm]\npoints_per_turn = 0\n")],
        ["[farm]", "'points_per_turn' must be at least 1"],
    ),
    (
        "config: round_fraction 1",
        lambda f: ["sweep", "--config", config(f, "[prune]\nround_fraction = 1.0\n")],
        ["[prune]", "'round_fraction' 1.0 is outside (0, 1)"],
    ),
    (
        "config: method typo",
        lambda f: ["sweep", "--config", config(f, "[prune]\nmethods = ['magnitude/gradul']\n")],
        ["unknown schedule 'gradul' (did you mean 'gradual'?)"],
    ),
    (
        "config: name leaves results",
        lambda f: ["sweep", "--config", config(f, "[sweep]\nname = '../../x'\n")],
        ["'name' '../../x' cannot name a folder"],
    ),
    ("config: not TOML", lambda f: ["sweep", "--config", config(f, "[sweep\n")], ["not valid TOML"]),
    ("config: missing", lambda f: ["sweep", "--config", f.dir / "nothere.toml"], ["no such config file"]),
    ("config: a folder", lambda f: ["sweep", "--config", f.dir], ["no such config file"]),
    # flags: the same schema, named by flag
    ("--targets a", sweep(lambda f: ["--targets", "a"]), ["--targets: item 1 must be float, got 'a'"]),
    ("--targets 1.5", sweep(lambda f: ["--targets", "0.5,1.5"]), ["--targets: 1.5 is outside [0, 1)"]),
    ("--targets repeated", sweep(lambda f: ["--targets", "0.5,0.5"]), ["--targets: repeats a value"]),
    ("--kernels empty", sweep(lambda f: ["--kernels", ","]), ["--kernels: is empty"]),
    (
        "--boards unknown",
        sweep(lambda f: ["--boards", "nucleo_f999"]),
        ["--boards: unknown board 'nucleo_f999'", "mps2_an386"],
    ),
    ("--port 99999", sweep(lambda f: ["--port", "99999"]), ["--port: TCP port 99999 is outside 1..65535"]),
    (
        "--port unknown board",
        sweep(lambda f: ["--port", "nucleo_f44re=/dev/ttyACM0"]),
        ["--port:", "unknown board 'nucleo_f44re' (did you mean 'nucleo_f446re'?)"],
    ),
    (
        "--inject-faults out of range",
        sweep(lambda f: ["--inject-faults", "rate=2,delay=-1"]),
        ["--inject-faults: rate 2.0 is outside [0, 1]"],
    ),
    (
        "--inject-faults negative delay",
        sweep(lambda f: ["--inject-faults", "delay=-1"]),
        ["--inject-faults: delay -1.0 is outside (0, 60]"],
    ),
    (
        "--inject-faults unknown key",
        sweep(lambda f: ["--inject-faults", "rat=0.1"]),
        ["--inject-faults: unknown key 'rat'"],
    ),
    (
        "--inject-faults on host",
        sweep(lambda f: ["--inject-faults", "rate=0.1"]),
        ["--inject-faults: board 'host' is not emulated over TCP"],
    ),
    ("--name with a slash", sweep(lambda f: ["--name", "a/b"]), ["--name: 'a/b' cannot name a folder"]),
    ("--results a file", sweep(lambda f: ["--results", f.dir / "a-file"]), ["--results", "is a file, not a folder"]),
    (
        "--results read-only",
        sweep(
            lambda f: ["--results", "/sys/harness-results" if os.geteuid() == 0 else f.dir / "read-only" / "results"]
        ),
        ["--results", "cannot write in"],
    ),
    ("--parallel 0", sweep(lambda f: ["--parallel", "0"]), ["--parallel", "0 is not a positive number"]),
    ("--task unknown", sweep(lambda f: ["--task", "regression"]), ["--task", "invalid choice: 'regression'"]),
    ("unknown flag", sweep(lambda f: ["--bogus"]), ["unrecognized arguments: --bogus"]),
    ("no command", lambda f: [], ["the following arguments are required"]),
    (
        "measure --target 1.5",
        lambda f: ["measure", "--board", "host", "--target", "1.5"],
        ["--target: 1.5 is outside [0, 1)"],
    ),
    (
        "measure --board unknown",
        lambda f: ["measure", "--board", "hots"],
        ["--board: unknown board 'hots' (did you mean 'host'?)"],
    ),
    (
        "measure --kernel unknown",
        lambda f: ["measure", "--board", "host", "--kernel", "crs"],
        ["--kernel: unknown kernel 'crs' (did you mean 'csr'?)"],
    ),
    (
        "hello --timeout -1",
        lambda f: ["hello", "--port", "socket://127.0.0.1:9", "--timeout", "-1"],
        ["--timeout", "not a number of seconds"],
    ),
    (
        "report --accuracy-floor 2",
        lambda f: ["report", f.run, "--accuracy-floor", "2"],
        ["--accuracy-floor", "not a fraction in (0, 1]"],
    ),
    # model and data files, before anything is trained or built
    (
        "truncated .tflite",
        sweep(lambda f: ["--model", f.dir / "truncated.tflite", "--data", f.good]),
        ["truncated.tflite", "is it truncated?"],
    ),
    ("empty .tflite", sweep(lambda f: ["--model", f.dir / "empty.tflite", "--data", f.good]), ["empty.tflite"]),
    (
        "text as .keras",
        sweep(lambda f: ["--model", f.dir / "text.keras", "--data", f.good]),
        ["text.keras cannot be loaded by Keras: it is not a .keras file"],
    ),
    (
        "text as .h5",
        sweep(lambda f: ["--model", f.dir / "text.h5", "--data", f.good]),
        ["text.h5 cannot be loaded by Keras: it is not an HDF5 file"],
    ),
    (
        "unknown model kind",
        sweep(lambda f: ["--model", f.dir / "model.onnx", "--data", f.good]),
        ["unknown model", "model.onnx"],
    ),
    (
        "model missing",
        sweep(lambda f: ["--model", f.dir / "nothere.keras", "--data", f.good]),
        ["nothere.keras does not exist"],
    ),
    ("model without data", sweep(lambda f: ["--model", f.keras]), ["needs a data set: --data"]),
    ("reference model with data", sweep(lambda f: ["--data", f.good]), ["brings its own data"]),
    (
        "config: skip an unknown layer",
        lambda f: [
            "sweep",
            "--model",
            f.keras,
            "--data",
            f.good,
            "--config",
            config(f, "[prune]\nskip = ['dense_2']\n"),
        ],
        ["[prune] skip:", "has no prunable layer 'dense_2' (did you mean 'dense'?)"],
    ),
    (
        "config: target of an unknown layer",
        lambda f: ["sweep", "--config", config(f, "[prune]\nlayer_targets = { fc9 = 0.5 }\n")],
        ["[prune] layer_targets: reference model 'digits_cnn' has no prunable layer 'fc9'"],
    ),
    (
        "config: skipped and targeted",
        lambda f: ["sweep", "--config", config(f, "[prune]\nskip = ['fc1']\nlayer_targets = { fc1 = 0.5 }\n")],
        ["[prune]: layer 'fc1' is both in 'skip' and in 'layer_targets'"],
    ),
    (
        "nothing to prune",
        sweep(lambda f: ["--model", f.dir / "weightless.keras", "--data", f.good]),
        ["model 'weightless' has no prunable layers"],
    ),
    (
        "data missing",
        sweep(lambda f: ["--model", f.keras, "--data", f.dir / "nothere.npz"]),
        ["nothere.npz does not exist"],
    ),
    ("text as .npz", sweep(lambda f: ["--model", f.keras, "--data", f.dir / "text.npz"]), ["text.npz is not an .npz"]),
    (
        ".npy as .npz",
        sweep(lambda f: ["--model", f.keras, "--data", f.dir / "array.npz"]),
        ["array.npz is not an .npz"],
    ),
    (
        "x_test wrong shape",
        sweep(lambda f: ["--model", f.keras, "--data", f.wrong_shape]),
        ["wrong-shape.npz", "x_test samples of shape (17,) do not fit", "whose input is (16,)"],
    ),
    (
        "x_test wrong shape, .tflite",
        sweep(lambda f: ["--model", f.tflite, "--data", f.wrong_shape]),
        ["x_test samples of shape (17,) do not fit"],
    ),
    (
        "x_test one number",
        sweep(lambda f: ["--model", f.keras, "--data", f.scalar]),
        ["scalar.npz", "one row per sample"],
    ),
    ("zero samples", sweep(lambda f: ["--model", f.keras, "--data", f.zero]), ["zero.npz", "x_test holds no samples"]),
    ("zero samples, .tflite", sweep(lambda f: ["--model", f.tflite, "--data", f.zero]), ["x_test holds no samples"]),
    (
        "label 42",
        sweep(lambda f: ["--model", f.keras, "--data", f.label42]),
        ["label42.npz", "y_test holds labels 42..42", "classes 0..9"],
    ),
    ("label -1", sweep(lambda f: ["--model", f.keras, "--data", f.label_minus1]), ["y_test holds labels -1..-1"]),
    ("label 42, .tflite", sweep(lambda f: ["--model", f.tflite, "--data", f.label42]), ["y_test holds labels 42"]),
    ("NaN in x_test", sweep(lambda f: ["--model", f.keras, "--data", f.nan]), ["nan.npz", "x_test holds 16 NaN"]),
    ("NaN in x_test, .tflite", sweep(lambda f: ["--model", f.tflite, "--data", f.nan]), ["x_test holds 16 NaN"]),
    ("inf in x_train", sweep(lambda f: ["--model", f.keras, "--data", f.inf]), ["x_train holds 1024 NaN or infinite"]),
    ("no y_test", sweep(lambda f: ["--model", f.keras, "--data", f.no_y]), ["no-y.npz lacks y_test"]),
    (
        "fewer labels than samples",
        sweep(lambda f: ["--model", f.keras, "--data", f.short_y]),
        ["x_test has 16 samples but y_test has 15"],
    ),
    ("fractional labels", sweep(lambda f: ["--model", f.keras, "--data", f.fractional]), ["y_test"]),
    ("text samples", sweep(lambda f: ["--model", f.keras, "--data", f.texts]), ["x_test is of type <U1"]),
    # runs given to rerun and report
    ("rerun --point 99", lambda f: ["rerun", f.run, "--point", "99"], ["--point 99", "has points 1..2"]),
    ("rerun --point 0", lambda f: ["rerun", f.run, "--point", "0"], ["--point 0", "has points 1..2"]),
    ("rerun without points", lambda f: ["rerun", f.run], ["--point N", "--failed"]),
    ("rerun no run folder", lambda f: ["rerun", f.dir, "--point", "1"], ["is no run folder with a manifest.json"]),
    (
        "rerun a config of another harness",
        lambda f: ["rerun", f.unknown, "--point", "1"],
        ["manifest.json [device]: unknown key 'warmpu' (did you mean 'warmup'?)"],
    ),
    (
        "rerun --port 99999",
        lambda f: ["rerun", f.run, "--point", "1", "--port", "99999"],
        ["--port: TCP port 99999 is outside 1..65535"],
    ),
    ("rerun truncated results.csv", lambda f: ["rerun", f.cut, "--failed"], ["results.csv is cut short"]),
    (
        "rerun --inject-faults on host",
        lambda f: ["rerun", f.run, "--point", "1", "--inject-faults", "rate=0.1"],
        ["board 'host' is not emulated over TCP"],
    ),
    ("report truncated results.csv", lambda f: ["report", f.cut], ["nothing to report", "results.csv is cut short"]),
    ("report empty results.csv", lambda f: ["report", f.empty], ["nothing to report", "results.csv is empty"]),
    ("report no run", lambda f: ["report", f.dir / "nothere"], ["nothing to report", "no such directory"]),
    ("report --out a file", lambda f: ["report", f.run, "--out", f.dir / "a-file"], ["--out", "is a file"]),
]

# As a user runs them: the interpreter's whole way, TensorFlow's start-up output included.
IN_A_PROCESS_OF_THEIR_OWN = (
    "--targets a",
    "--port 99999",
    "--inject-faults out of range",
    "config: typo",
    "unknown flag",
    "truncated .tflite",
    "text as .keras",
    "rerun --point 99",
    "report truncated results.csv",
)


def files_below(*roots: Path) -> dict[str, tuple[int, int] | None]:
    """Every file with its size and time of change, and every folder (whose time changes as a write is tried)."""
    return {
        str(path): None if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns)
        for root in roots
        if root.exists()
        for path in [root, *root.rglob("*")]
    }


@pytest.fixture
def isolated(f, tmp_path, monkeypatch):
    """A cache that must stay empty, and a stop before the first stage that does work; no reaper process
    tied to this test session (tests/test_bench_ownership.py tests it)."""
    import harness.cache
    import harness.orchestrator
    import harness.reaper

    def prepare_models(*_, **__):
        raise AssertionError("the bad input got through validation to training and building")

    monkeypatch.setattr(harness.cache, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(harness.orchestrator, "prepare_models", prepare_models)
    monkeypatch.setattr(harness.reaper, "start", lambda: None)
    read_only = f.dir / "read-only"
    read_only.mkdir(mode=0o555, exist_ok=True)
    return tmp_path


def check_refusal(code, stderr: str, fragments: list[str]) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case, argv, fragments", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_and_exit_2(case, argv, fragments, f, isolated, capfd):
    from harness.cli import main

    args = [str(a) for a in argv(f)]
    if args[:1] in (["sweep"], ["measure"]) and "--results" not in args:
        args += ["--results", str(isolated / "results")]
    watched = (f.dir, isolated)
    before = files_below(*watched)
    try:
        code = main(args)
    except SystemExit as exit:  # argparse's errors
        code = exit.code
    check_refusal(code, capfd.readouterr().err, fragments)
    assert files_below(*watched) == before


@pytest.mark.parametrize("case", IN_A_PROCESS_OF_THEIR_OWN)
def test_bad_input_in_a_process_of_its_own(case, f, tmp_path):
    _, argv, fragments = next(c for c in CASES if c[0] == case)
    args = [str(a) for a in argv(f)]
    if args[:1] == ["sweep"] and "--results" not in args:
        args += ["--results", str(tmp_path / "results")]
    # The project's own cache, which other runs may fill meanwhile: no half-made model may appear there.
    half_made = lambda: set((PROJECT_DIR / ".cache" / "models").glob("*.tmp"))  # noqa: E731
    before = files_below(f.dir, tmp_path), half_made()
    proc = run_harness(*args, timeout=120)
    check_refusal(proc.returncode, proc.stderr, fragments)
    assert (files_below(f.dir, tmp_path), half_made()) == before


def test_points_that_fail_to_measure_exit_1_and_an_interrupt_130(monkeypatch, tmp_path, capsys):
    import harness.orchestrator
    import harness.reaper
    from harness.cli import main

    monkeypatch.setattr(harness.reaper, "start", lambda: None)

    def failing(config, results_root, bench):
        raise harness.orchestrator.SweepFailed(1, 2, "[2] csr on host: run: serial timeout", tmp_path)

    def interrupted(config, results_root, bench):
        raise KeyboardInterrupt

    sweep = ["sweep", "--boards", "host", "--targets", "0", "--kernels", "dense,csr", "--results", tmp_path]
    monkeypatch.setattr(harness.orchestrator, "run_sweep", failing)
    assert main([str(a) for a in sweep]) == 1
    assert (
        capsys.readouterr().err == f"error: 1 of 2 points failed (rows kept in {tmp_path}/results.csv); first: "
        "[2] csr on host: run: serial timeout\n"
    )
    monkeypatch.setattr(harness.orchestrator, "run_sweep", interrupted)
    assert main([str(a) for a in sweep]) == 130
