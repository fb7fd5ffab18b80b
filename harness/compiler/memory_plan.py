"""Place every activation tensor and scratch buffer in one static arena.

A buffer is live from the op that writes it to the last op that reads it;
buffers whose lives overlap must not overlap in memory, with one exception:
an op's output may overlap an input that dies at that op, as far as the
kernel's read and write order allows (overlap.py). Placement is greedy, as
TFLite Micro's GreedyMemoryPlanner: buffers in some order, each at the
lowest offset that fits, so freed space is reused; a few orders are tried
and the smallest arena wins.

Two choices differ from TFLM on purpose:
- a RESHAPE output shares its input's bytes instead of being copied;
- the model input stays intact for the whole invocation when that costs no
  arena bytes, so model_invoke() can be repeated on the same input (the
  benchmark loop does that); otherwise its bytes are reused once it is
  consumed, as TFLM does, and MemoryPlan.input_preserved says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.compiler.calls import KernelCall
from harness.compiler.ir import Graph, Tensor

ALIGNMENT = 4  # lets later optimized kernels read words from any buffer


@dataclass(frozen=True)
class Buffer:
    key: object  # the Tensor, or ("scratch", op index)
    size: int
    first: int  # index of the first op that uses it
    last: int  # index of the last op that uses it

    def lives_with(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Overlap:
    """`output` may overlap `input` when offset(input) - offset(output) >= distance."""

    input: object  # Buffer keys
    output: object
    distance: int


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict  # Buffer.key -> offset in the arena
    arena_bytes: int
    buffers: tuple[Buffer, ...]
    aliases: dict  # Tensor -> the Tensor whose bytes it shares
    overlaps: tuple[Overlap, ...]
    input_preserved: bool  # model_invoke() leaves the model input intact

    def offset_of(self, tensor: Tensor) -> int:
        return self.offsets[self.aliases.get(tensor, tensor)]

    def scratch_offset(self, op_index: int) -> int:
        return self.offsets[("scratch", op_index)]


def plan_memory(graph: Graph, calls: list[KernelCall]) -> MemoryPlan:
    """The smallest plan found, keeping the model input intact if that costs nothing."""
    reused = _plan(graph, calls, preserve_input=False)
    preserved = _plan(graph, calls, preserve_input=True)
    return preserved if preserved.arena_bytes <= reused.arena_bytes else reused


def _plan(graph: Graph, calls: list[KernelCall], preserve_input: bool) -> MemoryPlan:
    aliases = _aliases(calls)
    buffers = _buffers(graph, calls, aliases, preserve_input)
    overlaps = _overlaps(calls, aliases, buffers)
    candidates = [place(ordered, overlaps, tightest) for ordered in _orders(buffers) for tightest in (False, True)]
    offsets = min(candidates, key=lambda o: _extent(o, buffers))
    return MemoryPlan(
        offsets=offsets,
        arena_bytes=_align(_extent(offsets, buffers)),
        buffers=tuple(buffers),
        aliases=aliases,
        overlaps=tuple(overlaps),
        input_preserved=preserve_input,
    )


def _aliases(calls: list[KernelCall]) -> dict:
    """Map each aliasing tensor to the tensor that owns the bytes (following chains of reshapes)."""
    aliases = {}
    for call in calls:
        if call.alias_of is not None:
            owner = aliases.get(call.alias_of, call.alias_of)
            aliases[call.op.outputs[0]] = owner
    return aliases


def _buffers(graph: Graph, calls: list[KernelCall], aliases: dict, preserve_input: bool) -> list[Buffer]:
    spans: dict[Tensor, tuple[int, int]] = {}

    def use(tensor: Tensor, first: int, last: int) -> None:
        owner = aliases.get(tensor, tensor)
        lo, hi = spans.get(owner, (first, last))
        spans[owner] = (min(lo, first), max(hi, last))

    last_op = len(graph.ops) - 1
    # Kept intact, the input outlives every op, the last included, so no output may overlap it.
    use(graph.input, 0, len(graph.ops) if preserve_input else 0)
    for op in graph.ops:
        for tensor in [*op.inputs, *op.outputs]:
            if tensor is not None and not tensor.is_constant:
                use(tensor, op.index, op.index)
    use(graph.output, last_op, last_op)
    buffers = [Buffer(tensor, tensor.nbytes, first, last) for tensor, (first, last) in spans.items()]
    buffers += [
        Buffer(("scratch", c.op.index), c.scratch_bytes, c.op.index, c.op.index) for c in calls if c.scratch_bytes
    ]
    return buffers


def _overlaps(calls: list[KernelCall], aliases: dict, buffers: list[Buffer]) -> list[Overlap]:
    """The overlaps the kernels allow, for inputs whose life ends where their op's output's begins."""
    by_key = {b.key: b for b in buffers}
    allowed = []
    for call in calls:
        index = call.op.index
        output = aliases.get(call.op.outputs[0], call.op.outputs[0])
        for tensor, distance in call.overlaps.items():
            source = aliases.get(tensor, tensor)
            if source is not output and by_key[source].last == index and by_key[output].first == index:
                allowed.append(Overlap(source, output, distance))
    return allowed


def _orders(buffers: list[Buffer]) -> list[list[Buffer]]:
    """Placement orders to try: largest first (TFLM's) with earlier or later buffers first among
    equals, and forwards or backwards in time. Placing an output before the input it may overlap
    lets the input settle just above it."""
    return [
        sorted(buffers, key=lambda b: (-b.size, b.first)),
        sorted(buffers, key=lambda b: (-b.size, -b.first)),
        sorted(buffers, key=lambda b: (b.first, -b.size)),
        sorted(buffers, key=lambda b: (-b.last, -b.size)),
    ]


def place(buffers: list[Buffer], overlaps: list[Overlap] = (), tightest: bool = False) -> dict:
    """Each buffer in turn where it clashes with no live placed buffer; offsets start at 0.

    The default takes the lowest free offset, as TFLM does. An output may
    only overlap its input from below, so with tightest=True a buffer may
    also go below everything placed so far, wherever that grows the arena
    least: a chain of overlapping layers then steps down as it goes.
    """
    distance = {(o.input, o.output): o.distance for o in overlaps}
    offsets: dict = {}
    placed: list[Buffer] = []
    for buffer in buffers:
        clashes = [_clash(buffer, other, offsets[other.key], distance) for other in placed if other.lives_with(buffer)]
        above = [_align(hi) for _, hi in clashes]
        below = [_align_down(lo) for lo, _ in clashes] if tightest else []
        free = [c for c in [0, *above, *below] if not any(lo < c < hi for lo, hi in clashes)]
        if tightest:
            offsets[buffer.key] = min(free, key=lambda c: (_span(offsets, placed, buffer, c), abs(c)))
        else:
            offsets[buffer.key] = min(c for c in free if c >= 0)
        placed.append(buffer)
    bottom = min(offsets.values(), default=0)
    return {key: offset - bottom for key, offset in offsets.items()}


def _span(offsets: dict, placed: list[Buffer], buffer: Buffer, at: int) -> int:
    """The arena's extent if `buffer` went at `at`."""
    low = min([at, *(offsets[b.key] for b in placed)])
    high = max([at + buffer.size, *(offsets[b.key] + b.size for b in placed)])
    return high - low


def _clash(buffer: Buffer, other: Buffer, at: int, distance: dict) -> tuple[int, int]:
    """The open interval of offsets where `buffer` would clash with `other` placed at `at`."""
    if (other.key, buffer.key) in distance:  # buffer is an output that may overlap its input `other`
        return at - min(buffer.size, distance[other.key, buffer.key]), at + other.size
    if (buffer.key, other.key) in distance:  # buffer is an input that its output `other` may overlap
        return at - buffer.size, at + min(other.size, distance[buffer.key, other.key])
    return at - buffer.size, at + other.size


def _extent(offsets: dict, buffers: list[Buffer]) -> int:
    return max((offsets[b.key] + b.size for b in buffers), default=0)


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _align_down(n: int) -> int:
    return n // ALIGNMENT * ALIGNMENT
