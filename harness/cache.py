"""Content hashes, atomic writes and provenance: what every stage's cache and every run's record use.

Each stage caches its artifact under .cache/<kind>/<hash of everything it
is made from>, so an identical re-run remakes nothing; a file or folder is
written beside its place and renamed onto it, so a process killed at any
moment leaves a whole artifact or none. Provenance (toolchain versions, the
harness's git SHA) goes into every result row and every run's manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from harness.paths import cache_dir, in_checkout, partial_path, project_file, replace_atomically

__all__ = [
    "CACHE_DIR",
    "atomic_folder",
    "content_hash",
    "file_digest",
    "folder",
    "harness_git_sha",
    "source_digest",
    "toolchain_versions",
    "write_atomically",
]

if TYPE_CHECKING:
    from harness.device.boards import Board

CACHE_DIR = cache_dir()

_SOURCE_SUFFIXES = (".py", ".c", ".h", ".cpp", ".ld", ".ini", ".json", ".toml")


def folder(kind: str) -> Path:
    """The cache folder of one kind of artifact ("models", "variants", "firmware", "results", ...)."""
    return CACHE_DIR / kind  # read at each call, so a test can point CACHE_DIR elsewhere


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def source_digest(paths: list[str]) -> str:
    """A digest of source files, so a cached artifact is invalidated when the code that made it changes."""
    digest = hashlib.sha256()
    for rel in paths:
        root = project_file(rel)
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(str(Path(rel) / path.relative_to(root)).encode())  # its path in a checkout
                digest.update(path.read_bytes())
    return digest.hexdigest()


def file_digest(paths: Iterable[Path]) -> str:
    """A content hash of files' bytes, in the order given."""
    return content_hash(*(hashlib.sha256(path.read_bytes()).hexdigest() for path in paths))


def write_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda partial: partial.write_text(text))


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield an empty folder to fill; on success it replaces path, on any error it is removed."""
    partial = partial_path(path)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)


def toolchain_versions(boards: list[Board]) -> dict[str, str]:
    """The Python packages and the boards' tools a measurement depends on, with their versions."""
    versions = {name: version(name) for name in ("platformio", "tensorflow-cpu", "tflite-micro", "numpy")}
    for board in boards:
        for tool, _ in board.needs:
            if tool not in versions:
                out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
                versions[tool] = out.splitlines()[0].strip() if out else "unknown"
    # Flags such as -DNN_REFERENCE_KERNELS make other firmware: recorded, and part of every cache key.
    if flags := os.environ.get("PLATFORMIO_BUILD_FLAGS"):
        versions["PLATFORMIO_BUILD_FLAGS"] = flags
    return versions


def harness_git_sha() -> str:
    """The checkout's commit, "-dirty" when tracked files have changes; "unknown" outside a git checkout."""
    if not in_checkout():
        return "unknown"  # installed from the wheel: git would name whatever repository it sits in

    def git(*args):
        return subprocess.run(["git", *args], cwd=project_file("."), capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
