"""Protocol throughput over the emulated link: inputs streamed as binary frames to QEMU's mps2-an386.

The figure goes into docs/bench.md; the test only guards against a collapse (e.g. a return to a round trip
per byte). Run with `-s` to see it.
"""

import shutil
import time

import numpy as np
import pytest

from harness.build import build_firmware
from harness.device.boards import get_board
from harness.device.session import board_session
from test_firmware import FAKE_MODEL, expected_output

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(300)]

INPUT_BYTES = 16000  # 32 frames of 508 input bytes: the fake model's own work is negligible next to the transfer
OUTPUT_BYTES = 16
SAMPLES = 12
# A round trip per byte, or per small frame, would fall far below this even on a busy machine.
FLOOR_BYTES_PER_S = 5_000


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    model = tmp_path_factory.mktemp("wide") / "model"
    shutil.copytree(FAKE_MODEL, model)
    header = model / "model.h"
    header.write_text(
        header.read_text()
        .replace("INPUT_BYTES   16", f"INPUT_BYTES   {INPUT_BYTES}")
        .replace("OUTPUT_BYTES  4", f"OUTPUT_BYTES  {OUTPUT_BYTES}")
    )
    return model


def test_input_throughput_over_the_emulated_link(wide_model, tmp_path):
    board = get_board("mps2_an386")
    firmware = build_firmware(board.name, wide_model, tmp_path / "build", build_id="throughput")
    samples = np.random.default_rng(0).integers(0, 256, (SAMPLES, INPUT_BYTES), dtype=np.uint8)
    with board_session(board, firmware, tmp_path / "serial.log", reply_timeout=5.0) as client:
        client.infer(samples[0].tobytes())  # the first inference also learns how long one takes
        started = time.perf_counter()
        outputs = [client.infer(sample.tobytes()) for sample in samples]
        seconds = time.perf_counter() - started
    assert outputs == [expected_output(sample.tobytes(), OUTPUT_BYTES) for sample in samples]
    rate = SAMPLES * INPUT_BYTES / seconds
    print(
        f"\ninput throughput over socket:// to QEMU mps2-an386: {rate / 1000:.0f} kB/s "
        f"({SAMPLES} inputs of {INPUT_BYTES} B in {seconds:.2f} s)"
    )
    assert rate > FLOOR_BYTES_PER_S
