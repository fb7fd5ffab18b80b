"""Place every activation tensor and scratch buffer in one static arena.

A buffer is live from the op that writes it to the last op that reads it;
buffers whose lives overlap must not overlap in memory. Placement is greedy
(largest first, each at the lowest offset that fits), as TFLite Micro's
GreedyMemoryPlanner does, so freed space is reused.

Two choices differ from TFLM on purpose:
- the model input stays live for the whole invocation, so model_invoke()
  can be repeated on the same input (the benchmark loop does that);
- a RESHAPE output shares its input's bytes instead of being copied.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.compiler.calls import KernelCall
from harness.compiler.ir import Graph, Tensor

ALIGNMENT = 4  # lets later optimized kernels read words from any buffer


@dataclass(frozen=True)
class Buffer:
    key: object   # the Tensor, or ("scratch", op index)
    size: int
    first: int    # index of the first op that uses it
    last: int     # index of the last op that uses it

    def lives_with(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict         # Buffer.key -> offset in the arena
    arena_bytes: int
    buffers: tuple[Buffer, ...]
    aliases: dict         # Tensor -> the Tensor whose bytes it shares

    def offset_of(self, tensor: Tensor) -> int:
        return self.offsets[self.aliases.get(tensor, tensor)]

    def scratch_offset(self, op_index: int) -> int:
        return self.offsets[("scratch", op_index)]


def plan_memory(graph: Graph, calls: list[KernelCall]) -> MemoryPlan:
    aliases = _aliases(calls)
    buffers = _buffers(graph, calls, aliases)
    offsets = place(buffers)
    arena = max((offsets[b.key] + b.size for b in buffers), default=0)
    return MemoryPlan(offsets=offsets, arena_bytes=_align(arena), buffers=tuple(buffers), aliases=aliases)


def _aliases(calls: list[KernelCall]) -> dict:
    """Map each aliasing tensor to the tensor that owns the bytes (following chains of reshapes)."""
    aliases = {}
    for call in calls:
        if call.alias_of is not None:
            owner = aliases.get(call.alias_of, call.alias_of)
            aliases[call.op.outputs[0]] = owner
    return aliases


def _buffers(graph: Graph, calls: list[KernelCall], aliases: dict) -> list[Buffer]:
    spans: dict[Tensor, tuple[int, int]] = {}

    def use(tensor: Tensor, first: int, last: int) -> None:
        owner = aliases.get(tensor, tensor)
        lo, hi = spans.get(owner, (first, last))
        spans[owner] = (min(lo, first), max(hi, last))

    last_op = len(graph.ops) - 1
    use(graph.input, 0, last_op)
    for op in graph.ops:
        for tensor in [*op.inputs, *op.outputs]:
            if tensor is not None and not tensor.is_constant:
                use(tensor, op.index, op.index)
    use(graph.output, last_op, last_op)
    buffers = [Buffer(tensor, tensor.nbytes, first, last) for tensor, (first, last) in spans.items()]
    buffers += [Buffer(("scratch", c.op.index), c.scratch_bytes, c.op.index, c.op.index)
                for c in calls if c.scratch_bytes]
    return buffers


def place(buffers: list[Buffer]) -> dict:
    """Greedy placement: largest first, each at the lowest aligned offset free during its life."""
    offsets: dict = {}
    placed: list[Buffer] = []
    for buffer in sorted(buffers, key=lambda b: (-b.size, b.first)):
        neighbours = sorted((p for p in placed if p.lives_with(buffer)), key=lambda p: offsets[p.key])
        offset = 0
        for other in neighbours:
            if offset + buffer.size <= offsets[other.key]:
                break  # fits in the gap below `other`
            offset = max(offset, _align(offsets[other.key] + other.size))
        offsets[buffer.key] = offset
        placed.append(buffer)
    return offsets


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT
