"""Every constant Python mirrors from the firmware's C equals it: read from the C sources, not copied here.

The firmware and the harness speak protocol version 2 (docs/design.md) from
both ends; a limit changed on one side only would show as a refused
command or a dropped frame on the board, far from the edit.
"""

import configparser
import re
import struct
import zlib

import pytest

from conftest import PROJECT_DIR
from harness.compiler.encode import CSR_TILE_WINDOW_MAX
from harness.compiler.encode_depthwise import CSR_MAX_TAPS
from harness.compiler.lower import DENSE_CONV_STACK_WINDOW_MAX, SPARSE_CONV_TILE
from harness.config import MAX_WARMUP
from harness.device import protocol
from harness.device.client import TIME
from harness.device.link import DEFAULT_BAUD
from harness.device.protocol import Command, Frame, Status

SRC = PROJECT_DIR / "firmware" / "src"
KERNELS = PROJECT_DIR / "firmware" / "kernels"


def c_defines(*paths) -> dict[str, str]:
    """Object-like and function-like #defines: name -> (parameters, body) as text."""
    defines = {}
    for path in paths:
        text = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)
        for name, params, body in re.findall(r"^#define\s+(\w+)(\(\w+\))?[ \t]+(.+)$", text, re.M):
            defines[name] = (params.strip("()"), body.strip())
    return defines


def c_value(name: str, defines: dict, **arguments: int) -> int:
    """An integer macro's value: its body with other macros expanded, evaluated with C's integer division."""
    params, body = defines[name]
    assert set(arguments) == ({params} if params else set()), (name, params)

    def expand(match: re.Match) -> str:
        word = match.group(0)
        if word in arguments:
            return str(arguments[word])
        return str(c_value(word, defines)) if word in defines else word

    text = re.sub(r"\b(\d+)[uU]?\b", r"\1", re.sub(r"\b[A-Za-z_]\w*\b", expand, body))
    assert re.fullmatch(r"[\d\s()+*/-]+", text), (name, body, text)
    return eval(text.replace("/", "//"), {"__builtins__": {}})


def c_enum(path, name: str, prefix: str) -> dict[str, int]:
    body = re.search(rf"enum {name}\s*{{(.*?)}};", path.read_text(), re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return {member.removeprefix(prefix): int(value) for member, value in re.findall(r"(\w+)\s*=\s*(\d+)", body)}


FRAME = c_defines(SRC / "frame.h", SRC / "cobs.h", SRC / "runtime.c")


def test_the_c_parser_reads_what_it_is_given(tmp_path):
    header = tmp_path / "h.h"
    header.write_text(
        "#define A 8u\n#define B (A / 3)  /* why */\n#define F(n) ((n) + (n) / 254u + 1u)\n"
        "enum e {\n    E_X = 1,   /* one */\n    E_Y = 7,\n};\n"
    )
    defines = c_defines(header)
    assert c_value("B", defines) == 2
    assert c_value("F", defines, n=600) == 603
    assert c_enum(header, "e", "E_") == {"X": 1, "Y": 7}


def test_command_and_status_codes():
    assert c_enum(SRC / "runtime.c", "command", "CMD_") == {command.name: command.value for command in Command}
    assert c_enum(SRC / "frame.h", "reply_status", "STATUS_") == {status.name: status.value for status in Status}


def test_protocol_version_and_payload_limit():
    assert c_value("PROTOCOL_VERSION", FRAME) == protocol.PROTOCOL_VERSION
    assert c_value("FRAME_MAX_PAYLOAD", FRAME) == protocol.MAX_PAYLOAD


def test_frame_header_and_crc_sizes():
    header, crc = c_value("FRAME_HEADER_BYTES", FRAME), c_value("FRAME_CRC_BYTES", FRAME)
    payload = b"\x01\x02\x03"
    body = protocol.cobs_decode(protocol.encode_frame(Frame(Command.HELLO, 7, 9, payload)).strip(b"\x00"))
    assert body[header:-crc] == payload
    assert struct.unpack("<I", body[-crc:])[0] == zlib.crc32(body[:-crc])
    assert protocol.MIN_BODY == header + crc


@pytest.mark.parametrize("payload", [0, 1, 253, protocol.MAX_PAYLOAD])
def test_longest_encoded_frame(payload):
    body = c_value("FRAME_HEADER_BYTES", FRAME) + payload + c_value("FRAME_CRC_BYTES", FRAME)
    assert c_value("COBS_MAX_ENCODED", FRAME, n=body) == protocol.max_encoded(payload)


def test_bench_warmup_limit():
    assert c_value("BENCH_MAX_WARMUP", FRAME) == MAX_WARMUP


def test_times_per_reply_and_their_width():
    # The board sends each run's and each layer's time as a u64, as many as a payload holds.
    assert c_value("TIMES_PER_REPLY", FRAME) == protocol.MAX_PAYLOAD // TIME.size
    assert TIME.format == "<Q"
    assert re.search(r"^uint64_t layer_timer_elapsed\(", (SRC / "layer_timer.h").read_text(), re.M)
    assert re.search(r"^static uint64_t stamps\[", (SRC / "layer_timer.c").read_text(), re.M)
    assert "reply_u64(layer_timer_elapsed(" in (SRC / "runtime.c").read_text()


def test_default_baud_rate():
    uart = c_defines(PROJECT_DIR / "firmware" / "boards" / "cmsdk_uart.c")
    assert c_value("UART_BAUD", uart) == DEFAULT_BAUD
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(PROJECT_DIR / "platformio.ini")
    assert int(ini["arduino"]["monitor_speed"]) == DEFAULT_BAUD


def test_depthwise_run_length():
    from harness.prune.cost_model import DEPTHWISE_RUN_MIN_PIXELS

    kernel = c_defines(KERNELS / "depthwise_conv2d_csr_s8.c")
    assert c_value("RUN_MIN_PIXELS", kernel) == DEPTHWISE_RUN_MIN_PIXELS


# The compiler's encodings and scratch sizes (harness/compiler) follow the kernels' limits: a limit changed in C
# only would encode weights the kernel reads wrongly, or size a buffer it overruns.
@pytest.mark.parametrize(
    "source, name, mirror",
    [
        ("kernels.h", "NN_CSR_TILE_WINDOW_MAX", CSR_TILE_WINDOW_MAX),
        ("kernels.h", "NN_DEPTHWISE_CSR_MAX_TAPS", CSR_MAX_TAPS),
        ("kernel_util.h", "NN_CONV_TILE", SPARSE_CONV_TILE),
        ("conv2d_s8.c", "STACK_WINDOW_MAX", DENSE_CONV_STACK_WINDOW_MAX),
    ],
)
def test_kernel_limits(source, name, mirror):
    assert c_value(name, c_defines(KERNELS / source)) == mirror
