"""The virtio console: guest output to our stdout, our stdin to the guest (spec 8 and 9).

Two queues, created in this order so they get interrupts n and n+1: *input* (the guest offers
writable buffers; we fill them from stdin) and *output* (the guest offers read-only buffers; we
write them to stdout).  The console is always the last device, as in 2.6.24.

Input is driven by the waker: when stdin becomes readable, the waker breaks the launcher out of
its read, and ``read_input`` runs.  With no guest buffer to fill we stop watching stdin until the
guest kicks the input queue again.  At end of input (2.6.24's launcher said nothing) the guest
gets two buffers: one holding ^D (EOT), which a Linux guest's terminal turns into end-of-file
for the program reading it, as a typed ^D would (a shell then exits, and the project's /init
powers off); then one empty buffer (used length 0: "end of input", which the project's own OS
takes as such and which a 2.6.24 driver simply reads as nothing).  Then stdin is not watched
again.

When stdin is a terminal it goes into the mode 2.6.24 used (no echo, no line editing, no signals
from the keyboard), and is always put back.  Ctrl-C therefore reaches the guest as a byte; three
of them within a second (with no other key between) end the launcher (exit status 2), as in
2.6.24.
"""

import os
import termios
import time
from typing import Any

from launcher.devices import DeviceTable
from launcher.errors import LaunchError
from launcher.virtqueue import Buffer, Direction, gather, views
from lguestfs.abi import VIRTIO_ID_CONSOLE

CTRL_C = 0x03
EOT = b"\x04"  # ^D: what the guest gets first at the end of our input
CTRL_C_TIMES = 3
CTRL_C_WINDOW = 1.0  # seconds (2.6.24 compared whole seconds: "within about a second")


class ThreeCtrlC(Exception):
    """The user pressed Ctrl-C three times within a second: the launcher should stop."""


class Console:
    def __init__(self, table: DeviceTable, stdin: int = 0, stdout: int = 1) -> None:
        self.table = table
        self.stdin = stdin
        self.stdout = stdout
        device = table.add_device(VIRTIO_ID_CONSOLE, "console")
        # A kick on the input queue means "here are buffers": watch stdin again.
        self.input = table.add_queue(device, "input", Direction.IN, lambda: table.watch(stdin))
        self.output = table.add_queue(device, "output", Direction.OUT, self.write_output)
        if _is_open(stdin):  # a launcher started with stdin closed simply has no console input
            table.add_input(stdin, self.read_input)
        self.ctrl_c_times: list[float] = []
        self.sent_eot = False
        self.saved_terminal: list[Any] | None = None

    # --- The terminal ---------------------------------------------------------------------------

    def raw_terminal(self) -> None:
        """If stdin is a terminal: no echo, no line editing, no keyboard signals, until restored."""
        if not os.isatty(self.stdin):
            return
        self.saved_terminal = termios.tcgetattr(self.stdin)
        mode = termios.tcgetattr(self.stdin)
        mode[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)  # lflag, as 2.6.24
        termios.tcsetattr(self.stdin, termios.TCSANOW, mode)

    def restore_terminal(self) -> None:
        if self.saved_terminal is not None:
            termios.tcsetattr(self.stdin, termios.TCSANOW, self.saved_terminal)
            self.saved_terminal = None

    # --- Guest to us ----------------------------------------------------------------------------

    def write_output(self) -> None:
        """Every buffer the guest queued goes to stdout; the used length is what was written."""
        while (chain := self.output.pop()) is not None:
            data = gather(self.table.guest.memory, chain.readable)
            self.output.push_used(chain.head, self._write_all(data))
        self.table.trigger(self.output)

    def _write_all(self, data: bytes) -> int:
        written = 0
        try:
            while written < len(data):
                written += os.write(self.stdout, data[written:])
        except BrokenPipeError:
            raise LaunchError("standard output was closed: stopping the guest") from None
        return written

    # --- Us to the guest ------------------------------------------------------------------------

    def read_input(self) -> bool:
        """stdin is readable: fill one guest buffer.  False: stop watching stdin for now."""
        chain = self.input.pop()
        if chain is None:
            return False  # no buffer: wait for the guest to kick the input queue
        try:
            received = os.readv(
                self.stdin, views(memoryview(self.table.guest.memory), chain.writable)
            )
        except OSError:
            received = 0
        if received == 0:
            return self._end_of_input(chain.head, chain.writable)
        self._count_ctrl_c(gather(self.table.guest.memory, chain.writable)[:received])
        self.input.push_used(chain.head, received)
        self.table.trigger(self.input)
        return True

    def _end_of_input(self, head: int, buffers: list[Buffer]) -> bool:
        """First ^D in this buffer (stdin stays readable, so we come back), then an empty one."""
        if not self.sent_eot and buffers and buffers[0].length >= len(EOT):
            address = buffers[0].address
            self.table.guest.memory[address : address + len(EOT)] = EOT
            self.sent_eot = True
            self.input.push_used(head, len(EOT))
            self.table.trigger(self.input)
            return True
        self.input.push_used(head, 0)
        self.table.trigger(self.input)
        self.table.forget_input(self.stdin)
        self.restore_terminal()
        return False

    def _count_ctrl_c(self, typed: bytes) -> None:
        """Each Ctrl-C counts, any other key starts the count again.  2.6.24 counted only reads
        of exactly one Ctrl-C; keys pressed while the guest had no buffer arrive together in one
        read, so here each byte counts on its own."""
        now = time.monotonic()
        for byte in typed:
            if byte != CTRL_C:
                self.ctrl_c_times.clear()
                continue
            self.ctrl_c_times = [t for t in self.ctrl_c_times if now - t <= CTRL_C_WINDOW] + [now]
            if len(self.ctrl_c_times) >= CTRL_C_TIMES:
                raise ThreeCtrlC()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
