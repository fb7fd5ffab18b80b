"""Bad input gets one clear line on stderr and a non-zero exit, and leaves no board process behind."""

import os
import socket
import threading

import numpy as np
import pytest

from conftest import run_harness

pytestmark = pytest.mark.usefixtures("no_leftover_boards")


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0]
    assert "Traceback" not in proc.stderr


def test_unknown_board():
    assert_one_line_error(run_harness("sweep", "--boards", "nucleo_f999"), "unknown board 'nucleo_f999'", "mps2_an386")


def test_config_typo_names_the_key(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text("[device]\nwarmpu = 3\n")
    assert_one_line_error(run_harness("sweep", "--config", config), str(config), "unknown key 'warmpu'", "'warmup'")


def test_missing_toolchain_names_the_apt_package(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # nothing on PATH: no cross compiler, no QEMU
    assert_one_line_error(run_harness("sweep", env=env), "arm-none-eabi-gcc not found", "gcc-arm-none-eabi")


def test_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_one_line_error(run_harness("sweep", "--port", port), f"port 127.0.0.1:{port} is in use")


def test_serial_timeout_names_the_port_and_log(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        accepted = []
        threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
        log = tmp_path / "serial.log"
        proc = run_harness("hello", "--port", f"socket://127.0.0.1:{port}", "--timeout", "1", "--log", log)
    assert_one_line_error(proc, "serial timeout", f"socket://127.0.0.1:{port}", str(log))
    assert b">> hello" in log.read_bytes()


def test_unsupported_op_names_op_and_index(tmp_path):
    import keras

    from harness.quantize import to_int8_tflite

    inputs = keras.Input((8,), batch_size=1)
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)  # TANH stays a separate op in the .tflite
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    x = np.random.default_rng(0).uniform(-1, 1, (64, 8)).astype(np.float32)
    model_path = tmp_path / "tanh.tflite"
    model_path.write_bytes(to_int8_tflite(model, x))
    np.savez(tmp_path / "data.npz", x_train=x, y_train=np.zeros(64), x_test=x[:8], y_test=np.zeros(8))
    proc = run_harness(
        "sweep", "--model", model_path, "--data", tmp_path / "data.npz", "--results", tmp_path / "results"
    )
    assert_one_line_error(proc, "op 1 (TANH) is not supported", "CONV_2D")


def test_a_model_file_that_is_no_tflite_is_named_before_its_data_is_read(tmp_path):
    # Data sets that do not fit a model: tests/test_field_models.py.
    np.savez(
        tmp_path / "data.npz",
        x_train=np.zeros((4, 3)),
        y_train=np.zeros(5),
        x_test=np.zeros((2, 3)),
        y_test=np.zeros(2),
    )
    (tmp_path / "m.tflite").write_bytes(b"not really")
    proc = run_harness("sweep", "--model", tmp_path / "m.tflite", "--data", tmp_path / "data.npz")
    assert_one_line_error(proc, "not a .tflite model")
