"""Read a .tflite flatbuffer into the compiler's IR, refusing what we cannot run.

Parsing uses the flatbuffer schema module that ships with ai-edge-litert,
so no TensorFlow import (which takes seconds) is needed.

Op options, by kind:
- CONV_2D: padding ("SAME"/"VALID"), stride (h, w), dilation (h, w), activation
- DEPTHWISE_CONV_2D: as CONV_2D (the depth multiplier follows from the shapes)
- MAX_POOL_2D, AVERAGE_POOL_2D: padding, stride, filter (h, w), activation
- FULLY_CONNECTED: activation
- SOFTMAX: beta
- ADD, MUL: activation
- CONCATENATION: axis, activation
- RESHAPE, PAD, PADV2, MEAN, LOGISTIC: none (shapes and constant inputs say it all)
- SHAPE: none; STRIDED_SLICE: begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask, offset;
  PACK: axis (these three only as shape arithmetic, computed at compile time: fold.py)
activation is one of ACTIVATIONS.

A dynamic batch (-1 first in a tensor's shape_signature, 1 in its shape) is
run as batch 1, as TFLite Micro runs it; any other dynamic dimension is refused.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from harness.compiler.fold import SHAPE_ONLY_OPS, fold_shape_arithmetic
from harness.compiler.ir import CompileError, Graph, Op, Quantization, Tensor

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
_ACTIVATION_NAMES = {
    code: name for name, code in vars(schema.ActivationFunctionType).items() if not name.startswith("_")
}
_PADDING_NAMES = {schema.Padding.SAME: "SAME", schema.Padding.VALID: "VALID"}
_NUMPY_DTYPES = {
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "BOOL": "bool",
}

INT8_CONVERSION_HINT = (
    "convert it with full-integer int8 quantization: TFLiteConverter with "
    "optimizations=[tf.lite.Optimize.DEFAULT], a representative_dataset, "
    "target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8] and "
    "inference_input_type = inference_output_type = tf.int8"
)


def _activation(op_index: int, kind: str, code: int) -> str:
    name = _ACTIVATION_NAMES.get(code, str(code))
    if name not in ACTIVATIONS:
        raise CompileError(f"op {op_index} ({kind}) has fused activation {name}; supported: {', '.join(ACTIVATIONS)}")
    return name


def _conv_options(index, kind, o) -> dict:
    return {
        "padding": _PADDING_NAMES[o.padding],
        "stride": (o.strideH, o.strideW),
        "dilation": (o.dilationHFactor, o.dilationWFactor),
        "activation": _activation(index, kind, o.fusedActivationFunction),
    }


def _pool_options(index, kind, o) -> dict:
    return {
        "padding": _PADDING_NAMES[o.padding],
        "stride": (o.strideH, o.strideW),
        "filter": (o.filterHeight, o.filterWidth),
        "activation": _activation(index, kind, o.fusedActivationFunction),
    }


def _fully_connected_options(index, kind, o) -> dict:
    if o.weightsFormat != schema.FullyConnectedOptionsWeightsFormat.DEFAULT:
        raise CompileError(f"op {index} ({kind}) uses shuffled weights; only the default format is supported")
    return {"activation": _activation(index, kind, o.fusedActivationFunction)}


def _activation_options(index, kind, o) -> dict:
    return {"activation": _activation(index, kind, o.fusedActivationFunction)}


def _concatenation_options(index, kind, o) -> dict:
    return {"axis": o.axis, "activation": _activation(index, kind, o.fusedActivationFunction)}


def _strided_slice_options(index, kind, o) -> dict:
    return {
        "begin_mask": o.beginMask,
        "end_mask": o.endMask,
        "ellipsis_mask": o.ellipsisMask,
        "new_axis_mask": o.newAxisMask,
        "shrink_axis_mask": o.shrinkAxisMask,
        "offset": bool(o.offset),
    }


# None: the op needs no options.
_OPTION_READERS = {
    "CONV_2D": _conv_options,
    "DEPTHWISE_CONV_2D": _conv_options,
    "MAX_POOL_2D": _pool_options,
    "AVERAGE_POOL_2D": _pool_options,
    "FULLY_CONNECTED": _fully_connected_options,
    "SOFTMAX": lambda index, kind, o: {"beta": float(o.beta)},
    "RESHAPE": None,
    "ADD": _activation_options,
    "MUL": _activation_options,
    "PAD": None,
    "PADV2": None,
    "CONCATENATION": _concatenation_options,
    "MEAN": None,
    "LOGISTIC": None,
}
SUPPORTED_OPS = tuple(_OPTION_READERS)
# Read, but compiled only when fold.py computes them away.
_OPTION_READERS.update(
    {"SHAPE": None, "STRIDED_SLICE": _strided_slice_options, "PACK": lambda index, kind, o: {"axis": o.axis}}
)


def read_tflite(tflite: bytes) -> Graph:
    """Parse and validate a single-subgraph, int8, static-shape model."""
    if len(tflite) < 8 or tflite[4:8] != b"TFL3":
        raise CompileError("not a .tflite model (missing the TFL3 flatbuffer identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
        subgraphs = model.subgraphs or []
        if len(subgraphs) == 1:
            subgraph = subgraphs[0]
            tensors = [_read_tensor(i, t, model.buffers, tflite) for i, t in enumerate(subgraph.tensors or [])]
    except Exception as err:  # a cut or corrupt flatbuffer fails anywhere in the generated reader
        raise CompileError(
            f"not a valid .tflite model ({len(tflite):,} bytes; is it truncated?): {type(err).__name__}: {err}"
        ) from None
    if len(subgraphs) != 1:
        raise CompileError(f"the model has {len(subgraphs)} subgraphs; exactly one is supported")
    if len(subgraph.inputs) != 1 or len(subgraph.outputs) != 1:
        raise CompileError(
            f"the model has {len(subgraph.inputs)} inputs and {len(subgraph.outputs)} "
            "outputs; exactly one of each is supported"
        )

    ops = [_read_op(i, op, model.operatorCodes, tensors) for i, op in enumerate(subgraph.operators or [])]
    graph = Graph(
        tensors=tensors,
        ops=fold_shape_arithmetic(ops),
        input=tensors[subgraph.inputs[0]],
        output=tensors[subgraph.outputs[0]],
    )
    # The model's own types first: a float model is refused as float, whatever else it has.
    _check_int8_activations(graph, [graph.input, graph.output])
    _check_static_shapes(subgraph, graph)
    _check_int8_activations(
        graph, [t for op in graph.ops for t in [*op.inputs, *op.outputs] if t is not None and not t.is_constant]
    )
    _check_supported(graph.ops)
    return graph


def _read_tensor(index: int, t, buffers, tflite: bytes) -> Tensor:
    type_name = _TYPE_NAMES.get(t.type, str(t.type))
    dtype = _NUMPY_DTYPES.get(type_name, type_name.lower())
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    name = t.name.decode() if isinstance(t.name, bytes) else (t.name or f"tensor{index}")
    quant = None
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        quant = Quantization(
            scale=np.asarray(q.scale, dtype=np.float32),
            zero_point=np.asarray(q.zeroPoint, dtype=np.int64),
            axis=int(q.quantizedDimension),
        )
    data = _constant_data(buffers[t.buffer], tflite) if t.buffer < len(buffers) else None
    if data is not None:
        data = np.frombuffer(data, dtype=dtype).reshape(shape)
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, quant=quant, data=data)


def _constant_data(buffer, tflite: bytes) -> bytes | None:
    # Models over 2 GB keep buffers after the flatbuffer, located by offset.
    if buffer.offset > 1:
        return tflite[buffer.offset : buffer.offset + buffer.size]
    if buffer.data is None or len(buffer.data) == 0:
        return None
    return np.asarray(buffer.data, dtype=np.uint8).tobytes()


def _check_static_shapes(subgraph, graph: Graph) -> None:
    """Only the batch may be dynamic, and then it runs as 1."""
    used = {id(t) for op in graph.ops for t in [*op.inputs, *op.outputs] if t is not None and not t.is_constant}
    for tensor, t in zip(graph.tensors, subgraph.tensors):
        signature = [int(d) for d in t.shapeSignature] if t.shapeSignature is not None else []
        if id(tensor) not in used or not any(d < 0 for d in signature):
            continue
        dynamic = [axis for axis, d in enumerate(signature) if d < 0]
        if dynamic == [0] and tensor.shape[:1] == (1,):
            continue
        raise CompileError(
            f"tensor '{tensor.name}' has dynamic dimension(s) {', '.join(map(str, dynamic))} in its shape "
            f"signature {signature}: only a dynamic batch (the first dimension, run as 1) is supported; "
            "give the other dimensions fixed sizes in the model's input before converting"
        )


def _read_op(index: int, op, operator_codes, tensors: list[Tensor]) -> Op:
    code = operator_codes[op.opcodeIndex]
    # Codes above 127 live only in builtinCode; older files only fill the deprecated byte.
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    kind = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if kind == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        kind = f"CUSTOM({custom})"
    reader = _OPTION_READERS.get(kind)
    if reader is not None and op.builtinOptions is None:
        raise CompileError(f"op {index} ({kind}) has no options in the .tflite file")
    options = reader(index, kind, op.builtinOptions) if reader is not None else {}
    return Op(
        index=index,
        kind=kind,
        inputs=[tensors[i] if i >= 0 else None for i in (op.inputs if op.inputs is not None else [])],
        outputs=[tensors[i] for i in (op.outputs if op.outputs is not None else [])],
        options=options,
    )


def _check_int8_activations(graph: Graph, activations: list[Tensor]) -> None:
    for t in activations:
        if t.dtype != "int8":
            which = "model input" if t is graph.input else "model output" if t is graph.output else "activation tensor"
            raise CompileError(
                f"{which} '{t.name}' is {t.dtype}, but only int8 models are supported; " + INT8_CONVERSION_HINT
            )


def _check_supported(ops: list[Op]) -> None:
    for op in ops:
        if op.kind in SHAPE_ONLY_OPS:
            raise CompileError(
                f"op {op.index} ({op.kind}) computes on values known only at run time; it is "
                "supported only as shape arithmetic on static shapes (fold.py)"
            )
        if op.kind not in SUPPORTED_OPS:
            raise CompileError(f"op {op.index} ({op.kind}) is not supported; supported ops: {', '.join(SUPPORTED_OPS)}")
