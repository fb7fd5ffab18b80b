"""A pruning method by name: "criterion/schedule[/pattern]".

For example "global-magnitude/iterative" or "magnitude/one-shot/2:4".

One string per method keeps a sweep config readable when it compares
several methods, and the same string labels the results rows.

A method has a criterion (the score that ranks a layer's weights) and a
scope (how the surviving weights are shared among layers): each layer to its
own target, a global ranking, or the hardware-aware allocation
(allocate.py), which shares them by predicted latency on the board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CRITERIA = ("magnitude", "taylor", "random")
SCOPES = ("layer", "global", "hardware")  # "global-" prefix: rank all layers' weights together
# Criteria named as a whole, not as "[global-]criterion": their scope is part of what they are.
# mac-weighted: |w| over the MACs the weight takes part in, ranked globally (weights that cost the least
# magnitude per MAC saved go first); hardware-aware: magnitude or Taylor saliency, each layer's share of the
# zeros chosen by the cost model.
NAMED = {
    "hardware-aware": ("magnitude", "hardware"),
    "hardware-aware-taylor": ("taylor", "hardware"),
    "mac-weighted-magnitude": ("mac-weighted", "global"),
}
SCHEDULES = ("one-shot", "iterative", "gradual", "lottery")
PATTERNS = ("unstructured", "filter")  # plus N:M, e.g. "2:4" or "1:4"
_N_OF_M = re.compile(r"(\d+):(\d+)")


@dataclass(frozen=True)
class Method:
    criterion: str
    scope: str
    schedule: str
    pattern: str = "unstructured"

    @property
    def name(self) -> str:
        named = {value: key for key, value in NAMED.items()}
        criterion = named.get((self.criterion, self.scope)) or (
            f"global-{self.criterion}" if self.scope == "global" else self.criterion
        )
        suffix = "" if self.pattern == "unstructured" else f"/{self.pattern}"
        return f"{criterion}/{self.schedule}{suffix}"

    @property
    def n_of_m(self) -> tuple[int, int] | None:
        """(N, M) for an N:M pattern: N weights kept in every M consecutive along the input dimension."""
        match = _N_OF_M.fullmatch(self.pattern)
        return (int(match[1]), int(match[2])) if match else None

    def fixed_target(self) -> float | None:
        """N:M fixes the sparsity (1 - N/M); other patterns follow the sweep's targets."""
        n_of_m = self.n_of_m
        return None if n_of_m is None else 1.0 - n_of_m[0] / n_of_m[1]


class MethodError(ValueError):
    """A method string that names no known criterion, schedule or pattern; the message says which part."""


def parse_method(text: str) -> Method:
    """A method from its name; a MethodError names the part it does not know.

    >>> parse_method("global-magnitude/gradual").name
    'global-magnitude/gradual'
    >>> parse_method("hardware-aware/gradual").scope
    'hardware'
    """
    parts = text.split("/")
    if len(parts) not in (2, 3):
        raise MethodError(
            f"method '{text}' must be 'criterion/schedule' or 'criterion/schedule/pattern', "
            "e.g. 'magnitude/gradual' or 'magnitude/one-shot/2:4'"
        )
    criterion, schedule = parts[0], parts[1]
    pattern = parts[2] if len(parts) == 3 else "unstructured"
    if criterion in NAMED:
        criterion, scope = NAMED[criterion]
    else:
        scope = "global" if criterion.startswith("global-") else "layer"
        criterion = criterion.removeprefix("global-")
        if criterion in NAMED:
            raise MethodError(
                f"method '{text}': '{criterion}' shares the zeros among layers itself; write '{criterion}/{schedule}'"
            )
        _check_part(text, "criterion", criterion, CRITERIA + tuple(NAMED))
    _check_part(text, "schedule", schedule, SCHEDULES)
    method = Method(criterion, scope, schedule, pattern)
    n_of_m = method.n_of_m
    if n_of_m is None:
        _check_part(text, "pattern", pattern, PATTERNS + ("2:4", "1:4"))
    elif not 0 < n_of_m[0] < n_of_m[1]:
        raise MethodError(f"method '{text}': pattern {pattern} must keep N of M weights with 0 < N < M")
    elif schedule != "one-shot":
        raise MethodError(
            f"method '{text}': an N:M pattern fixes the sparsity, so it runs with the one-shot "
            f"schedule only ('{criterion}/one-shot/{pattern}')"
        )
    if scope != "layer" and pattern != "unstructured":
        raise MethodError(
            f"method '{text}': {'global ranking' if scope == 'global' else 'hardware-aware allocation'}"
            " is for unstructured pruning only"
        )
    return method


def _check_part(text: str, what: str, value: str, known: tuple[str, ...]) -> None:
    from harness.config import did_you_mean

    if value not in known:
        raise MethodError(
            f"method '{text}': unknown {what} '{value}'{did_you_mean(value, known)}; known: {', '.join(known)}"
        )
