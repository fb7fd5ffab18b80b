"""Whatever the harness starts dies with it, however it dies (Linux).

Every process the harness starts (PlatformIO, the QEMU an upload leaves
running, a host board, labgrid's client) inherits HARNESS_OWNER=<harness
pid> in its environment. A small reaper process, started first, waits for
the harness to end: the kernel tells it (a parent-death signal), even after
a SIGKILL that gives the harness no chance to clean up, and it then stops
every process carrying that mark. It runs in a session of its own, so a
Ctrl-C or a kill of the harness's process group does not take it first. At
start the harness also stops what earlier, dead harnesses left (if a reaper
was killed too).

    python -m harness.reaper OWNER_PID
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MARK = "HARNESS_OWNER"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
GRACE_S = 2.0


def start() -> None:
    """Mark this process's future children as ours, stop what dead harnesses left, and start the reaper."""
    if os.environ.get(MARK) == str(os.getpid()):
        return  # started already (the command line run in-process twice)
    os.environ[MARK] = str(os.getpid())
    reap(lambda owner: not _alive(owner))
    subprocess.Popen(
        [sys.executable, "-m", "harness.reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != MARK},
        preexec_fn=die_with_parent,
    )


def die_with_parent() -> None:
    """In a child before it runs its program: Linux sends it SIGTERM when its parent dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def reap(should_stop) -> list[int]:
    """Stop (SIGTERM, then SIGKILL) every process of this user marked with an owner for which should_stop(pid)."""
    doomed = [pid for pid, owner in _marked() if should_stop(owner)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in doomed:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and any(_alive(pid) for pid in doomed):
            time.sleep(0.05)
    return doomed


def _marked() -> list[tuple[int, int]]:
    """(pid, owner pid) of the processes whose environment carries the mark (other users' cannot be read)."""
    found = []
    prefix = f"{MARK}=".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(prefix) and item[len(prefix) :].isdigit():
                found.append((int(entry.name), int(item[len(prefix) :])))
    return found


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a zombie's children were orphaned already)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def main(owner: int) -> None:
    ended = []
    signal.signal(signal.SIGTERM, lambda *_: ended.append(True))  # the parent-death signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The owner may have died before the parent-death signal was armed: then our parent is someone else.
    while not ended and os.getppid() == owner:
        time.sleep(1.0)
    reap(lambda marked_owner: marked_owner == owner)


if __name__ == "__main__":
    main(int(sys.argv[1]))
