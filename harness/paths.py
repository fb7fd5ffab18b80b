"""Where the harness finds its project files, and where it may write: in a checkout, or installed from the wheel.

The project is laid out in folders beside each other (harness/, models/,
firmware/, configs/, platformio.ini). The wheel carries them inside the
`harness` package: models/ as `harness.models`, the rest under
harness/project/ (symlinks in the checkout, so the wheel holds the
checkout's files; pyproject.toml). Every reader of a project file asks
`project_file` with the file's path in the checkout, and gets it either way.

Nothing is written inside the package. A checkout builds, caches and keeps
results in itself, as `make setup` prepares it (.pio/, .cache/, results/).
Installed, the harness works in ./.harness (PlatformIO's project with its
core dir, and the caches) and writes runs to ./results, both under the
folder it is run from.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
# Where a path of the checkout lies in the installed package, by its first part; any other under project/.
_IN_PACKAGE = {"harness": PACKAGE_DIR, "models": PACKAGE_DIR / "models"}
# What PlatformIO needs in the folder it runs in: platformio.ini names the rest relative to it.
_PLATFORMIO_FILES = ("platformio.ini", "firmware")


def in_checkout() -> bool:
    """Whether this harness runs from a source checkout (an editable install counts) rather than a wheel."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "firmware").is_dir()


def project_file(path: str) -> Path:
    """A project file or folder by its path in the checkout, e.g. "firmware/boards/profiles.toml"."""
    if in_checkout():
        return _CHECKOUT / path
    first, _, rest = path.partition("/")
    if first in _IN_PACKAGE:
        return _IN_PACKAGE[first] / rest
    return PACKAGE_DIR / "project" / path


def work_dir() -> Path:
    """Where builds and caches go: the checkout, or ./.harness for an installed harness."""
    return _CHECKOUT if in_checkout() else Path(".harness").absolute()


def cache_dir() -> Path:
    """Artifacts kept across runs, keyed by content (models, compiled variants, firmware, measured points)."""
    return work_dir() / ".cache"


def results_dir() -> Path:
    """Where run folders go unless told otherwise: the checkout's results/, or ./results."""
    return _CHECKOUT / "results" if in_checkout() else Path("results").absolute()


def platformio_project() -> Path:
    """The folder PlatformIO runs in (`pio -d`), which it writes into (.pio/): the checkout; installed, the work
    dir, given links to the package's platformio.ini and firmware/ on first use."""
    if in_checkout():
        return _CHECKOUT
    work = work_dir()
    work.mkdir(parents=True, exist_ok=True)
    for name in _PLATFORMIO_FILES:
        _link(work / name, project_file(name))
    return work


def _link(link: Path, target: Path) -> None:
    """Point link at target, replacing a link to another install; atomic, for harnesses starting side by side."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    replace_atomically(link, lambda partial: partial.symlink_to(target))


def replace_atomically(path: Path, make: Callable[[Path], object]) -> None:
    """Make path's new file or link under a partial name beside it (make(partial)), then rename that onto path:
    a reader sees the old or the new, never part of one. (Here, below harness/cache.py, so this module can use it.)"""
    partial = partial_path(path)
    partial.unlink(missing_ok=True)  # left by a killed process that had this pid
    make(partial)
    partial.replace(path)


def partial_path(path: Path) -> Path:
    """A name beside path that no other process or thread writing the same path uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
