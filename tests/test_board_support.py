"""Real-board support that cannot run here (firmware/boards/arduino_board.cpp, cycles_*), checked as far as
this machine allows: the shared C runs on the host, the Cortex-M code compiles for each core it targets, and
the Arduino files compile against the Arduino API they use. The boards themselves are untested here."""

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.device.link import DEFAULT_BAUD

PROJECT_DIR = Path(__file__).resolve().parent.parent
BOARDS = PROJECT_DIR / "firmware" / "boards"
INCLUDES = ["-I", str(PROJECT_DIR / "firmware" / "src"), "-I", str(BOARDS)]

COUNTER64_DRIVER = r"""
#include <stdio.h>
#include "counter64.h"

int main(void)
{
    struct counter64 counter = {0, 0};
    const uint32_t reads[] = {5, 0xFFFFFFF0u, 3, 3, 0x80000000u, 2};  /* wraps after the 2nd and 4th */
    for (unsigned i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        printf("%llu\n", (unsigned long long)counter64_extend(&counter, reads[i]));
    }
    return 0;
}
"""


def compile_c(compiler: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([compiler, "-Wall", "-Wextra", "-Werror", *INCLUDES, *args], capture_output=True, text=True)


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_counter64_extends_a_wrapping_counter(tmp_path):
    driver = tmp_path / "driver.c"
    driver.write_text(COUNTER64_DRIVER)
    built = compile_c("gcc", "-std=c99", "-o", str(tmp_path / "driver"), str(driver), str(BOARDS / "counter64.c"))
    assert built.returncode == 0, built.stderr
    out = subprocess.run([tmp_path / "driver"], capture_output=True, text=True, check=True).stdout.split()
    wrap = 2**32
    assert [int(v) for v in out] == [5, 0xFFFFFFF0, wrap + 3, wrap + 3, wrap + 0x80000000, 2 * wrap + 2]


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("cpu", ["cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33"])
def test_dwt_cycle_counter_compiles_for_each_core_it_serves(cpu, tmp_path):
    built = compile_c(
        "arm-none-eabi-gcc",
        f"-mcpu={cpu}",
        "-mthumb",
        "-std=c99",
        "-c",
        "-o",
        str(tmp_path / "cycles_dwt.o"),
        str(BOARDS / "cycles_dwt.c"),
    )
    assert built.returncode == 0, built.stderr


@pytest.mark.skipif(not shutil.which("g++"), reason="needs g++")
@pytest.mark.parametrize(
    "source, defines",
    [
        (
            "arduino_board.cpp",
            ["board_init", "board_read_byte", "board_write", "board_timer_now", "board_stack_region"],
        ),
        ("cycles_esp32.cpp", ["cycle_counter", "cycle_counter_read", "cycle_counter_core_hz"]),
        ("cycles_micros.cpp", ["cycle_counter", "cycle_counter_read", "cycle_counter_core_hz"]),
    ],
)
def test_arduino_files_compile_against_the_arduino_api(source, defines, tmp_path):
    api = PROJECT_DIR / "tests" / "data" / "arduino_api"
    built = compile_c(
        "g++",
        "-std=gnu++17",
        f"-DBENCH_BAUD={DEFAULT_BAUD}",  # platformio.ini's [arduino] build_flags set it
        "-c",
        "-I",
        str(api),
        "-o",
        str(tmp_path / "board.o"),
        str(BOARDS / source),
    )
    assert built.returncode == 0, built.stderr
    # C linkage, so the runtime (C) finds them: defined, unmangled, global
    symbols = subprocess.run(
        ["nm", "--defined-only", "-g", tmp_path / "board.o"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(defines) <= set(symbols)


def test_every_real_board_has_an_environment_and_a_profile():
    from harness.build import env_option
    from harness.device.boards import BOARDS as KNOWN

    real = [board for board in KNOWN.values() if not board.emulated]
    assert {board.name for board in real} >= {"nucleo_f446re", "nano33ble", "pico", "esp32s3"}
    for board in real:
        assert env_option(board.name, "framework") == ["arduino"]
        assert not env_option(board.name, "platform").startswith("symlink://")
        assert board.usb, board.name
