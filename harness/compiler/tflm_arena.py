"""How much arena TensorFlow Lite Micro needs for a model, to compare with our static plan.

TFLM's Python wrapper records its allocations; print_allocations() writes
them to the C++ stderr after an invocation:

    [RecordingMicroAllocator] Arena allocation total 24208 bytes
    [RecordingMicroAllocator] Arena allocation head 16000 bytes
    [RecordingMicroAllocator] Arena allocation tail 8208 bytes

The head is what TFLM's greedy memory planner lays out for activations and
kernel scratch buffers, the counterpart of our MODEL_ARENA_BYTES. The tail
holds TFLM's own bookkeeping (tensor and node structs, kernel op data),
which generated C keeps in flash instead; its size here is the host's, with
64-bit pointers, so it overstates a microcontroller's.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

_ALLOCATION = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


@dataclass(frozen=True)
class TflmArena:
    head: int  # planned activations and scratch buffers
    tail: int  # persistent interpreter data (host-sized)

    @property
    def total(self) -> int:
        return self.head + self.tail


def tflite_micro_arena(tflite: bytes) -> TflmArena:
    """Run one inference in TFLM's interpreter and read back its recorded arena use."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
    interpreter.invoke()
    found = dict(_ALLOCATION.findall(_native_stderr(interpreter.print_allocations)))
    return TflmArena(head=int(found["head"]), tail=int(found["tail"]))


def _native_stderr(call) -> str:
    """What call() writes to file descriptor 2, where C++ code prints."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        return captured.read().decode(errors="replace")
