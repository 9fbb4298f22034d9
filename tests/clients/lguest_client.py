"""lguest_client in Python: the 64-bit twin of ``lguest_client.c``, same commands, same answers.

Run as ``python tests/clients/lguest_client.py``; see the C file for the command language.  A
Python launcher's ``os.read`` is retried by the interpreter after a signal handler returns
(PEP 475), so ``catch`` installs a handler that raises: that is how a Python launcher sees EINTR.
"""

import errno
import mmap
import os
import signal
import struct
import sys
import threading
from types import FrameType

WORD = "L"  # native unsigned long: 8 bytes here


class Interrupted(Exception):
    """Raised by a caught signal's handler, to end the read or write it interrupted."""


def on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def base_of(memory: mmap.mmap) -> int:
    import ctypes

    anchor = ctypes.c_char.from_buffer(memory)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


mappings: list[mmap.mmap] = []  # kept alive: the guest's memory must outlive the command


def mapped(memory: mmap.mmap) -> str:
    mappings.append(memory)
    return f"ok {base_of(memory):#x}"


def command(line: str) -> str:
    verb, *args = line.split()
    if verb == "open":
        return f"ok {os.open(args[0], os.O_RDWR)}"
    if verb == "close":
        os.close(int(args[0], 0))
        return "ok 0"
    if verb == "write":
        words = [int(word, 0) for word in args[1:]]
        return f"ok {os.write(int(args[0], 0), struct.pack(f'{len(words)}{WORD}', *words))}"
    if verb == "raw":
        data = bytes.fromhex(args[1]) if len(args) > 1 else b""
        return f"ok {os.write(int(args[0], 0), data)}"
    if verb == "read":
        data = os.read(int(args[0], 0), int(args[1], 0))
        return f"ok {len(data)} {data.hex()}"
    if verb == "memfd":
        size = int(args[0], 0) * mmap.PAGESIZE
        fd = os.memfd_create("guest")
        os.ftruncate(fd, size)
        return mapped(mmap.mmap(fd, size, mmap.MAP_SHARED))
    if verb == "mapfd":
        return mapped(mmap.mmap(int(args[0], 0), int(args[1], 0) * mmap.PAGESIZE, mmap.MAP_SHARED))
    if verb == "private":
        size = int(args[0], 0) * mmap.PAGESIZE
        return mapped(mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
    if verb == "catch":
        signal.signal(int(args[0], 0), on_signal)
        return "ok 0"
    if verb == "ignore":
        signal.signal(int(args[0], 0), signal.SIG_IGN)
        return "ok 0"
    if verb == "block":
        signal.pthread_sigmask(signal.SIG_BLOCK, {int(args[0], 0)})
        return "ok 0"
    if verb == "threadopen":
        opened: list[int] = []
        opener = threading.Thread(target=lambda: opened.append(os.open(args[0], os.O_RDWR)))
        opener.start()
        opener.join()
        return f"ok {opened[0]}" if opened else f"err {errno.EIO}"
    if verb == "forkread":
        child = os.fork()
        if child == 0:
            try:
                os.read(int(args[0], 0), int(args[1], 0))
            except OSError as error:
                os._exit(error.errno or errno.EIO)
            except Interrupted:
                os._exit(errno.EINTR)
            os._exit(0)
        return f"ok {child}"
    if verb == "wait":
        status = os.waitpid(int(args[0], 0), 0)[1]
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        return f"ok {code} {os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0}"
    if verb == "pid":
        return f"ok {os.getpid()} {threading.get_native_id()}"
    return f"err {errno.EINVAL}"


def main() -> None:
    while True:
        try:
            line = sys.stdin.readline()
            if not line:
                return
            if not line.strip():
                continue
            try:
                reply = command(line)
            except OSError as error:
                reply = f"err {error.errno}"
            except Interrupted:
                reply = f"err {errno.EINTR}"
            print(reply, flush=True)
        except Interrupted:
            continue  # a signal between commands: nothing was interrupted


if __name__ == "__main__":
    main()
