"""Hardware-in-the-loop benchmarking harness for pruned int8 models.

The Python API (harness/api.py, README: Python API): sweep, measure, load_results, load_layers and
load_pruned_layers. They are imported on first use, so `import harness` (and so every command line) stays
cheap: no pandas, no TensorFlow. (The sweep's stages run from harness/orchestrator.py, so the name
`harness.sweep` is the API's function, not a module.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.api import load_layers, load_pruned_layers, load_results, measure, sweep

__all__ = ["load_layers", "load_pruned_layers", "load_results", "measure", "sweep"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("harness.api"), name)
    raise AttributeError(f"module 'harness' has no attribute '{name}'")
