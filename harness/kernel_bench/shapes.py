"""What the micro-benchmark sweeps: single-layer shapes and how their weights are pruned.

A shape is written as it is named on the command line:

    fc-256x256             FULLY_CONNECTED, 256 inputs -> 256 outputs
    conv3x3-16x16x16-32    CONV_2D 3x3, SAME, stride 1, on a 16x16x16 input, 32 output channels
    dw3x3-16x16x64         DEPTHWISE_CONV_2D 3x3, SAME, stride 1, on a 16x16x64 input
    dw15x1-15x1x64-valid   the same with VALID padding (a conv or dw shape ending in -valid),
                           as streaming models' (k x 1) windows on 1-pixel-wide maps run
    conv3x3-32x32x16-32-s2 a conv or dw shape with stride 2 in both directions (-sN last, after any
                           -valid), as ResNet-8's downsampling convolutions and DS-CNN's first one

A pruning is a fraction of weights zeroed by magnitude ("0.9") or an N:M
pattern ("2:4": the 2 largest of every 4 consecutive weights along the input
channels survive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The targets of issue 5 ("fast kernels").
DEFAULT_SHAPES = ("fc-256x256", "conv3x3-16x16x16-32", "conv1x1-16x16x64-64", "dw3x3-16x16x64")
DEFAULT_PRUNINGS = ("0", "0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "2:4", "1:4")

_FC = re.compile(r"fc-(\d+)x(\d+)")
# The window options a conv or dw shape ends in: padding, then stride.
_OPTIONS = r"(?P<valid>-valid)?(?:-s(?P<stride>\d+))?"
_CONV = re.compile(r"conv(\d+)x(\d+)-(\d+)x(\d+)x(\d+)-(\d+)" + _OPTIONS)
_DEPTHWISE = re.compile(r"dw(\d+)x(\d+)-(\d+)x(\d+)x(\d+)" + _OPTIONS)


class ShapeError(ValueError):
    """A shape or pruning the micro-benchmark cannot read."""


@dataclass(frozen=True)
class LayerShape:
    name: str  # as written, e.g. "conv3x3-16x16x16-32"
    op: str  # the TFLite op it converts to
    input_shape: tuple[int, ...]  # without the batch
    kernel: tuple[int, int] = (1, 1)  # convolution window
    outputs: int = 0  # output features or channels (not for depthwise)
    padding: str = "same"  # convolutions: "same" or "valid"
    stride: int = 1  # convolutions: in both directions

    def keras_layer(self):
        import keras

        layers = keras.layers
        if self.op == "FULLY_CONNECTED":
            return layers.Dense(self.outputs, name="layer")
        window = {"padding": self.padding, "strides": self.stride, "name": "layer"}
        if self.op == "CONV_2D":
            return layers.Conv2D(self.outputs, self.kernel, **window)
        return layers.DepthwiseConv2D(self.kernel, **window)

    def output_map(self) -> tuple[int, int]:
        """A convolution's output height and width, as TFLite computes them.

        >>> parse_shape("conv10x4-49x10x1-64-s2").output_map(), parse_shape("dw3x3-9x9x8-valid-s2").output_map()
        ((25, 5), (4, 4))
        """
        sizes = self.input_shape[:2]
        if self.padding == "valid":
            sizes = tuple(size - k + 1 for size, k in zip(sizes, self.kernel))
        return tuple(-(-size // self.stride) for size in sizes)


def parse_shape(text: str) -> LayerShape:
    """
    >>> shape = parse_shape("conv3x3-16x16x16-32")
    >>> shape.op, shape.input_shape, shape.kernel, shape.outputs, shape.padding
    ('CONV_2D', (16, 16, 16), (3, 3), 32, 'same')
    >>> parse_shape("dw15x1-15x1x64-valid").padding
    'valid'
    >>> parse_shape("conv1x1-16x16x32-64-s2").stride
    2
    """
    numbers = lambda match, count: tuple(int(v) for v in match.groups()[:count])  # noqa: E731
    window = lambda match: {"padding": "valid" if match["valid"] else "same", "stride": int(match["stride"] or 1)}  # noqa: E731
    if match := _FC.fullmatch(text):
        inputs, outputs = numbers(match, 2)
        shape = LayerShape(text, "FULLY_CONNECTED", (inputs,), outputs=outputs)
    elif match := _CONV.fullmatch(text):
        kh, kw, h, w, c, outputs = numbers(match, 6)
        shape = LayerShape(text, "CONV_2D", (h, w, c), (kh, kw), outputs, **window(match))
    elif match := _DEPTHWISE.fullmatch(text):
        kh, kw, h, w, c = numbers(match, 5)
        shape = LayerShape(text, "DEPTHWISE_CONV_2D", (h, w, c), (kh, kw), **window(match))
    else:
        raise ShapeError(
            f"shape '{text}' is none of fc-INxOUT, convKHxKW-HxWxCIN-COUT[-valid][-sN], "
            f"dwKHxKW-HxWxC[-valid][-sN] (e.g. {', '.join(DEFAULT_SHAPES)})"
        )
    if 0 in shape.input_shape + shape.kernel + (shape.stride,) or (
        shape.op != "DEPTHWISE_CONV_2D" and not shape.outputs
    ):
        raise ShapeError(f"shape '{text}' has a zero dimension")
    if shape.padding == "valid" and any(k > size for k, size in zip(shape.kernel, shape.input_shape)):
        raise ShapeError(f"shape '{text}': a VALID window larger than the input leaves no output")
    return shape


def shape_of_layer(layer) -> str | None:
    """The shape name of a built Keras layer (Dense, Conv2D, DepthwiseConv2D), as parse_shape reads it; None
    for a layer the micro-benchmark cannot build alike (another type, a Dense on more than one axis, unequal
    strides, dilation, grouped convolution, a depth multiplier, Conv1D).

    >>> import keras
    >>> x = keras.Input((32, 32, 16))
    >>> layer = keras.layers.Conv2D(32, 3, strides=2, padding="same")
    >>> _ = layer(x)
    >>> shape_of_layer(layer)
    'conv3x3-32x32x16-32-s2'
    """
    kind = type(layer).__name__
    input_shape = tuple(layer.input.shape)[1:]
    if kind == "Dense":
        return f"fc-{input_shape[0]}x{layer.units}" if len(input_shape) == 1 else None
    if kind not in ("Conv2D", "DepthwiseConv2D") or len(input_shape) != 3:
        return None
    strides, dilation = tuple(layer.strides), tuple(layer.dilation_rate)
    if strides[0] != strides[1] or dilation != (1, 1) or getattr(layer, "groups", 1) != 1:
        return None
    if kind == "DepthwiseConv2D" and layer.depth_multiplier != 1:
        return None
    kh, kw = layer.kernel_size
    h, w, c = input_shape
    name = f"conv{kh}x{kw}-{h}x{w}x{c}-{layer.filters}" if kind == "Conv2D" else f"dw{kh}x{kw}-{h}x{w}x{c}"
    valid = layer.padding == "valid" and (kh, kw) != (1, 1)  # a 1x1 window pads nothing: one shape either way
    return name + ("-valid" if valid else "") + (f"-s{strides[0]}" if strides[0] > 1 else "")


@dataclass(frozen=True)
class Pruning:
    label: str  # "0.9", "2:4"
    sparsity: float  # the fraction of weights zeroed
    pattern: tuple[int, int] | None = None  # (N, M) for an N:M pattern

    @property
    def kind(self) -> str:
        return "unstructured" if self.pattern is None else f"{self.pattern[0]}:{self.pattern[1]}"


def parse_pruning(text: str) -> Pruning:
    """
    >>> parse_pruning("1:4")
    Pruning(label='1:4', sparsity=0.75, pattern=(1, 4))
    """
    if ":" in text:
        try:
            n, m = (int(v) for v in text.split(":"))
        except ValueError:
            raise ShapeError(f"pruning '{text}' is no N:M pattern such as 2:4") from None
        if not 0 < n < m:
            raise ShapeError(f"pruning '{text}': an N:M pattern needs 0 < N < M")
        return Pruning(text, 1.0 - n / m, (n, m))
    try:
        sparsity = float(text)
    except ValueError:
        raise ShapeError(f"pruning '{text}' is neither a sparsity (0.9) nor an N:M pattern (2:4)") from None
    if not 0.0 <= sparsity < 1.0:
        raise ShapeError(f"sparsity {text} is outside [0, 1)")
    return Pruning(text, sparsity)


def check_pattern_fits(shape: LayerShape, pruning: Pruning) -> None:
    """An N:M pattern groups weights along the input channels, which must split into groups of M."""
    if pruning.pattern and shape.input_shape[-1] % pruning.pattern[1]:
        raise ShapeError(
            f"pattern {pruning.label} needs input channels in groups of {pruning.pattern[1]}, "
            f"but shape '{shape.name}' has {shape.input_shape[-1]}"
        )
