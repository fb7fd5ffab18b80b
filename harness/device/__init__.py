"""Boards: links, sessions, flashing, measurement on a board, and the labgrid farm."""

import os

# gRPC (the labgrid farm's client, harness/device/farm.py) runs fork handlers around every fork of the process,
# and they race its poller thread when the harness starts a build or an emulator while a farm call is in flight:
# the harness was seen to abort there ("epoll_wait error: Bad file descriptor", SIGABRT; grpc/grpc#43055). Every
# child the harness forks execs at once and never uses gRPC, so the handlers have nothing to do. Set here, before
# any module of this package can import grpc, which reads it once.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
