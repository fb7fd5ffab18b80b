"""Where the checkout's folders are: the one place that derives the project root from this file's location."""
from __future__ import annotations

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
