"""Full-integer int8 conversion and the host reference interpreters.

TFLite Micro's interpreter is the reference the generated C must match bit
for bit; LiteRT's reference kernels are a second opinion (they round
FULLY_CONNECTED differently on a few percent of samples).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

REPRESENTATIVE_SAMPLES = 200


@dataclass(frozen=True)
class QuantParams:
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x / self.scale) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


def to_int8_tflite(model, x_representative: np.ndarray) -> bytes:
    """Convert a Keras model to a full-integer int8 .tflite (int8 input and output), at batch 1.

    A model whose input has batch None (as published models have) is traced
    at batch 1, so the file has static shapes and no run-time shape arithmetic.
    """
    import tensorflow as tf

    def representative_dataset():
        for sample in x_representative[:REPRESENTATIVE_SAMPLES]:
            yield [sample[np.newaxis].astype(np.float32)]

    (model_input,) = model.inputs
    with converter_output_hidden(), tempfile.TemporaryDirectory() as exported:
        if model_input.shape[0] is None:
            model.export(
                exported,
                format="tf_saved_model",
                verbose=False,
                input_signature=[tf.TensorSpec((1, *model_input.shape[1:]), tf.float32)],
            )
            converter = tf.lite.TFLiteConverter.from_saved_model(exported)
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return converter.convert()


@contextlib.contextmanager
def converter_output_hidden():
    """Keep the converter's chatter (a TensorSpec line per tensor, MLIR notes) off the terminal unless the
    harness runs with -v; when conversion fails, its last lines go into the error."""
    if logging.getLogger("harness").isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except Exception as err:
            sys.stdout.flush()
            captured.seek(0)
            tail = captured.read().decode(errors="replace").strip().splitlines()[-5:]
            raise ConversionError(f"int8 conversion failed: {err}" + "".join(f"\n  {line}" for line in tail)) from err
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class ConversionError(RuntimeError):
    """TensorFlow's converter refused the model."""


def io_quant_params(tflite: bytes) -> tuple[QuantParams, QuantParams]:
    """Input and output quantization of a single-input, single-output model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    return QuantParams(*inp["quantization"]), QuantParams(*out["quantization"])


def run_tflite_micro(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of TFLite Micro's interpreter, one row per int8 input sample."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite)
    outputs = []
    for sample in inputs:
        interpreter.set_input(sample[np.newaxis], 0)
        interpreter.invoke()
        outputs.append(interpreter.get_output(0).reshape(-1).copy())
    return np.stack(outputs)


def run_litert_reference(tflite: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs of LiteRT with its reference (not optimized) kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    outputs = []
    for sample in inputs:
        interpreter.set_tensor(inp["index"], sample[np.newaxis])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).reshape(-1).copy())
    return np.stack(outputs)
