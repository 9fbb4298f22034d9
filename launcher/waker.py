"""The waker: the process that breaks the launcher out of its read when input arrives (spec 1.5).

The launcher spends its life blocked in ``read()`` on the node while the guest runs.  When a key
is typed or a frame arrives, somebody must get it out of there: the waker.  It ``select()``s on the
devices' input fds and, when one is readable, writes BREAK 1.  The node then makes the launcher's
read return EAGAIN, and keeps the waker's write blocked; the launcher feeds the input to the guest
and writes BREAK 0, which releases the waker, which goes back to ``select()``.

Why the waker opens a handle of its own: in 2.6.24 it simply wrote on the descriptor it inherited
from the launcher.  On a FUSE file that deadlocks: the kernel serialises a write and a read on one
``struct file`` (the f_pos lock), and direct writes to one inode (the inode lock), so the waker's
BREAK would wait for the very read it is meant to interrupt.  lguestfs therefore offers each guest
a separate node, ``MOUNT/guests/<pid>/waker``, a non-owner handle on its own inode; the waker
opens that and closes the inherited descriptor.  (Only on a real ``/dev/lguest``, which has no
``guests/`` directory, does it use the inherited descriptor, as 2.6.24 did.)

The launcher tells the waker which fds to watch through a pipe, as 2.6.24 did: a native int,
``fd`` to watch it, ``-fd - 1`` to stop watching (when the guest has no buffer for that input);
end of file on the pipe means the launcher is finished.

``lguest-waker PID [--every MS]`` does the same from another shell: it opens the guest's waker node
and writes BREAK 1 once (or every MS milliseconds), which makes the launcher service its input.
"""

import argparse
import ctypes
import errno
import os
import select
import signal
import struct
import sys
import time
from pathlib import Path

from launcher import identity
from launcher.errors import LaunchError
from launcher.node import write_break
from lguestfs import node

PIPE_MESSAGE = struct.Struct("@i")
PR_SET_PDEATHSIG = 1
GRACE = 0.05  # seconds the waker gets to leave by itself once its pipe is closed
CHILD_EXIT_WAIT = 2.0  # seconds to wait for it after SIGKILL (the node must answer it first)


class Waker:
    """The launcher's side: fork the waker, tell it what to watch, and end it."""

    def __init__(self, handle: Path | None, node_fd: int, watched: set[int]) -> None:
        """Fork the waker: it will BREAK through ``handle`` (``launcher.node.waker_path``), or
        through ``node_fd`` on a real /dev/lguest (``handle`` None), when one of ``watched`` is
        readable."""
        read_end, self.pipe = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(self.pipe)
            status = 1
            try:
                status = _watch(handle, node_fd, read_end, set(watched))
            finally:
                os._exit(status)
        os.close(read_end)

    def watch(self, fd: int, on: bool) -> None:
        """Start (``on``) or stop watching ``fd``: a ``WatchListener`` for the device table."""
        if self.pipe >= 0:
            try:
                os.write(self.pipe, PIPE_MESSAGE.pack(fd if on else -fd - 1))
            except BrokenPipeError:
                raise LaunchError(
                    "the waker has exited: input can no longer reach the guest"
                ) from None

    def stop(self) -> None:
        """End the waker and reap it.  It may sit in a BREAK that nobody will release (the guest
        died), so after closing its pipe it is killed; the node answers a killed writer."""
        if self.pipe < 0:
            return  # already stopped
        os.close(self.pipe)
        self.pipe = -1
        if self._reaped(GRACE):
            return
        os.kill(self.pid, signal.SIGKILL)
        self._reaped(CHILD_EXIT_WAIT)  # if it is still stuck in the node, init will reap it

    def _reaped(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True


def _die_with_parent() -> None:
    """Ask the kernel to kill us if the launcher dies, so no waker outlives its launcher."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _watch(handle: Path | None, node_fd: int, pipe: int, watched: set[int]) -> int:
    """The waker child's life: select, BREAK, repeat.  Returns its exit status."""
    launcher = os.getppid()
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides what Ctrl-C means
    if os.getppid() != launcher:
        return 0
    if handle is None:
        fd = node_fd  # a real /dev/lguest: sharing the launcher's descriptor is fine there
    else:
        os.close(node_fd)  # never write on it: on FUSE that deadlocks (see the module docstring)
        try:
            fd = os.open(handle, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            print(f"lguest-waker: cannot open {handle}: {error.strerror}", file=sys.stderr)
            return 1
    while True:
        ready, _, _ = select.select([pipe, *sorted(watched)], [], [])
        if pipe in ready:
            message = os.read(pipe, PIPE_MESSAGE.size)
            if len(message) < PIPE_MESSAGE.size:
                return 0  # the launcher closed the pipe: it is done
            (value,) = PIPE_MESSAGE.unpack(message)
            if value >= 0:
                watched.add(value)
            else:
                watched.discard(-value - 1)
            continue
        try:
            write_break(fd, 1)  # blocks until the launcher has serviced the input
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            return 0 if error.errno == errno.ENOENT else 1  # ENOENT: the guest is dead


# --- lguest-waker: the same from another shell ----------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lguest-waker",
        description="Break a running lguest launcher out of its read, so that it services its "
        "input (what the launcher's own waker does when a key is typed).",
    )
    parser.add_argument("pid", type=int, metavar="PID", help="the launcher's process id")
    parser.add_argument(
        "--every",
        type=float,
        metavar="MS",
        help="break it out again every MS milliseconds until the guest ends or Ctrl-C",
    )
    parser.add_argument(
        "--mount",
        type=Path,
        metavar="DIR",
        help="the lguestfs mount point (default: whichever lguestfs in /proc/mounts has the guest)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        identity.check()  # at every start: the ``launcher`` package in use is lguestfs's
    except ImportError as error:
        print(f"lguest-waker: {error}", file=sys.stderr)
        return 1
    args = _parser().parse_args(argv)
    if args.every is not None and args.every <= 0:
        print("lguest-waker: --every needs a positive number of milliseconds", file=sys.stderr)
        return 2
    mounts = [args.mount] if args.mount is not None else node.lguestfs_mounts()
    if not mounts:
        print("lguest-waker: no lguestfs is mounted (give --mount DIR)", file=sys.stderr)
        return 1
    paths = [node.waker_path(mount, args.pid) for mount in mounts]
    path = next((p for p in paths if node.reachable(p)), None)
    if path is None:
        where = " or ".join(str(mount) for mount in mounts)
        print(f"lguest-waker: no guest with pid {args.pid} under {where}", file=sys.stderr)
        return 1
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        print(f"lguest-waker: the guest of pid {args.pid} has just gone", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"lguest-waker: cannot open {path}: {error.strerror}", file=sys.stderr)
        return 1
    try:
        while True:
            try:
                write_break(fd, 1)
            except OSError as error:
                if error.errno == errno.ENOENT:
                    print(f"lguest-waker: the guest of pid {args.pid} is dead", file=sys.stderr)
                    return 0 if args.every is not None else 1
                print(f"lguest-waker: break failed: {error.strerror}", file=sys.stderr)
                return 1
            if args.every is None:
                return 0
            time.sleep(args.every / 1000)
    except KeyboardInterrupt:
        return 0
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
