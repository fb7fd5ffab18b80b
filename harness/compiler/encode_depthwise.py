"""DEPTHWISE_CONV_2D's weight layouts, as the kernels read them (kernels.h).

Sparse formats are the shared encoders (encode.FORMATS) applied to the
[C_OUT, KH * KW] matrix, a row per output channel and the tap number as the
column. The dense kernel works on groups of 4 output channels and, on cores with the DSP
extension, multiplies 16-bit halves: a word load of 4 input channels is
widened by SXTB16 into the pairs (0, 2) and (1, 3). The weights are stored
already widened in that order, so one LDRD loads a tap's 4 weights:

    word 2 * (g * taps + t) + j = weight(t, 4g + j) | weight(t, 4g + j + 2) << 16, j in {0, 1}

with channels past the last one zero. This takes 2 bytes per weight, twice
the .tflite's int8, plus the padding of the last group: the flash account
counts these bytes as they are.
"""

from __future__ import annotations

import numpy as np

from harness.compiler.encode import CArray, DenseWeights

CSR_MAX_TAPS = 64  # NN_DEPTHWISE_CSR_MAX_TAPS: the sparse kernel keeps one pointer per tap on the stack


def pack_depthwise(weights: np.ndarray) -> np.ndarray:
    """[taps, channels] int8 weights as the kernel's int32 words.

    >>> pack_depthwise(np.array([[1, 2, -3, 4, 5]], np.int8)).tolist()  # 1 tap, 5 channels: 2 groups
    [-196607, 262146, 5, 0]
    """
    taps, channels = weights.shape
    groups = -(-channels // 4)
    padded = np.zeros((taps, groups * 4), np.int64)
    padded[:, :channels] = weights
    lanes = padded.reshape(taps, groups, 4).transpose(1, 0, 2)  # [group, tap, lane]
    low, high = lanes[..., :2], lanes[..., 2:]  # lanes (0, 1) and (2, 3)
    words = (low & 0xFFFF) | ((high & 0xFFFF) << 16)
    return words.reshape(-1).astype(np.uint32).view(np.int32)


def encode_dense_depthwise(weights: np.ndarray, name: str) -> DenseWeights:
    """[1, KH, KW, C_OUT] int8 weights in the dense kernel's layout."""
    matrix = np.asarray(weights, np.int8).reshape(-1, weights.shape[-1])
    return DenseWeights(values=CArray(name, pack_depthwise(matrix)), nonzeros=int(np.count_nonzero(matrix)))
