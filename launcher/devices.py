"""The device page and the devices' plumbing: descriptors, virtqueues, interrupts, input (spec 9).

2.6.24's guest finds its devices on one page just above its memory (guest-physical ``mem``, its
``max_pfn << 12``).  The launcher writes a packed list of descriptors there, one per device:
``u8 type`` (0 ends the list), ``u8 config_len``, ``u8 status`` (the guest writes it), then
``config_len`` bytes of TLV fields: ``u8 type, u8 len, data``.  A virtqueue is such a field
(type 2, ``{u16 num, u16 irq, u32 pfn}``), so a device's config grows as its queues are added;
fields must therefore be added to the newest device only, as in 2.6.24.

``DeviceTable`` owns that page, hands out queue pages and interrupt numbers (1, 2, ... per queue
in creation order; 0 is the timer), dispatches the guest's NOTIFY to the queue whose first page it
names, and keeps the set of input file descriptors the waker watches.  The devices themselves
(``console``, ``block``, ``net``) only say what their queues and fields are and how to serve them.

The console bytes of spec 9 come out of this code exactly:
``03 14 00 | 02 08 80 00 01 00 01 40 00 00 | 02 08 80 00 02 00 03 40 00 00 | 00``.
"""

import select
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from launcher.errors import LaunchError
from launcher.layout import PreparedGuest
from launcher.node import write_irq
from launcher.virtqueue import Direction, Virtqueue
from lguestfs.abi import (
    DEVICE_DESC_HEADER,
    LGUEST_IRQS,
    PAGE_SIZE,
    VIRTIO_CONFIG_F_VIRTQUEUE,
    VIRTQUEUE_NUM,
    VIRTQUEUE_PAGES,
)

VIRTQUEUE_FIELD = struct.Struct("<HHI")  # num, irq, pfn

# An input handler is called when its fd is readable; it returns False to stop being watched
# (no guest buffer to put input in, or the input is finished), as 2.6.24's handle_input did.
InputHandler = Callable[[], bool]
# Tells the waker: watch this fd (True) or stop watching it (False).
WatchListener = Callable[[int, bool], None]


@dataclass
class Device:
    """One entry on the device page, and its queues."""

    name: str
    device_type: int
    offset: int  # of its descriptor, from the start of the device page
    config_len: int = 0
    queues: list[Virtqueue] = field(default_factory=list)


class DeviceTable:
    """Every device of one guest, and the route from a NOTIFY or a readable fd to its handler."""

    def __init__(
        self, guest: PreparedGuest, *, verbose: Callable[[str], None] | None = None
    ) -> None:
        self.guest = guest
        self.page = guest.add_device_pages(1)
        self.used = 0  # bytes of the device page used by descriptors
        self.devices: list[Device] = []
        self.next_irq = 1
        self.fd: int | None = None  # the node, once INITIALIZE has been written
        self._handlers: dict[int, tuple[str, Callable[[], None]]] = {}  # queue pfn -> name, handler
        self._inputs: dict[int, InputHandler] = {}  # every input fd a device has
        self.watched: set[int] = set()  # the ones the waker should watch now
        self.watch_listener: WatchListener | None = None
        self.verbose = verbose or (lambda message: None)
        self.tracing = verbose is not None  # skip building messages nobody will read

    # --- Building the device page (before INITIALIZE) -----------------------------------------

    def add_device(self, device_type: int, name: str) -> Device:
        if self.used + DEVICE_DESC_HEADER > PAGE_SIZE:
            raise LaunchError("too many devices for the device page")
        device = Device(name, device_type, self.used)
        self.guest.memory[self.page + self.used] = device_type
        self.used += DEVICE_DESC_HEADER
        self.devices.append(device)
        return device

    def add_field(self, device: Device, field_type: int, data: bytes) -> None:
        """Append one config TLV to ``device``, which must be the newest device."""
        if device is not self.devices[-1]:
            raise ValueError(f"config fields go to the newest device, not {device.name}")
        size = 2 + len(data)
        if len(data) > 255 or device.config_len + size > 255:
            raise LaunchError(f"{device.name}: device configuration is too large")
        if self.used + size > PAGE_SIZE:
            raise LaunchError("too many devices for the device page")
        start = self.page + self.used
        self.guest.memory[start : start + size] = bytes([field_type, len(data)]) + data
        self.used += size
        device.config_len += size
        self.guest.memory[self.page + device.offset + 1] = device.config_len

    def add_queue(
        self, device: Device, name: str, direction: Direction, on_notify: Callable[[], None]
    ) -> Virtqueue:
        """Give ``device`` a 128-entry queue on two fresh pages, with the next interrupt number.

        ``direction`` is the shape of chains the device can use (the queue refuses others);
        ``on_notify`` runs when the guest kicks the queue (NOTIFY of its first page)."""
        if self.next_irq >= LGUEST_IRQS:
            raise LaunchError(
                f"too many devices: the guest has {LGUEST_IRQS - 1} device interrupts"
            )
        address = self.guest.add_device_pages(VIRTQUEUE_PAGES)
        pfn = address // PAGE_SIZE
        queue = Virtqueue(
            self.guest, f"{device.name} {name}", pfn, VIRTQUEUE_NUM, self.next_irq, direction
        )
        self.add_field(
            device, VIRTIO_CONFIG_F_VIRTQUEUE, VIRTQUEUE_FIELD.pack(VIRTQUEUE_NUM, queue.irq, pfn)
        )
        self.next_irq += 1
        device.queues.append(queue)
        self._handlers[pfn] = (queue.name, on_notify)
        self.verbose(f"{queue.name}: queue at pfn {pfn:#x}, irq {queue.irq}")
        return queue

    # --- Notifications from the guest ---------------------------------------------------------

    def notify(self, address: int) -> bool:
        """Run the handler of the queue whose first page ``address`` is in; False if none."""
        found = self._handlers.get(address // PAGE_SIZE)
        if found is None:
            return False
        name, handler = found
        if self.tracing:
            self.verbose(f"notify {address:#x}: {name}")
        handler()
        return True

    def trigger(self, queue: Virtqueue) -> None:
        """Interrupt the guest for ``queue``, unless it said not to (NO_INTERRUPT)."""
        if not queue.interrupts_wanted:
            return
        if self.fd is None:
            raise RuntimeError("interrupt before INITIALIZE")
        try:
            result = write_irq(self.fd, queue.irq)
        except OSError as error:
            raise LaunchError(
                f"raising irq {queue.irq} for {queue.name}: {error.strerror}"
            ) from None
        if result != 0:
            raise LaunchError(f"raising irq {queue.irq} for {queue.name}: write returned {result}")

    # --- Input: the fds whose data goes to the guest ------------------------------------------

    def add_input(self, fd: int, handler: InputHandler) -> None:
        self._inputs[fd] = handler
        self.watch(fd)

    def watch(self, fd: int) -> None:
        """(Re)start watching an input fd: the guest gave us somewhere to put its data."""
        if fd in self._inputs and fd not in self.watched:
            self.watched.add(fd)
            if self.watch_listener is not None:
                self.watch_listener(fd, True)

    def unwatch(self, fd: int) -> None:
        if fd in self.watched:
            self.watched.discard(fd)
            if self.watch_listener is not None:
                self.watch_listener(fd, False)

    def forget_input(self, fd: int) -> None:
        """The input is finished for good (end of file): never watch it again."""
        self.unwatch(fd)
        self._inputs.pop(fd, None)

    def service_input(self) -> None:
        """Feed every readable input to its device until none is ready (after a break)."""
        while self.watched:
            ready, _, _ = select.select(sorted(self.watched), [], [], 0)
            if not ready:
                return
            for fd in ready:
                handler = self._inputs.get(fd)
                if handler is not None and fd in self.watched and not handler():
                    self.unwatch(fd)
