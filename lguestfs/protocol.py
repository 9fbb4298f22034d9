"""The request protocol of one ``/dev/lguest`` handle: spec section 1, errno for errno.

In 2.6.24 this was ``drivers/lguest/lguest_user.c``: ``write()`` takes an array of ``unsigned
long`` whose first word says what the launcher wants, ``read()`` runs the guest until there is
something to tell the launcher.  Here it is the same state machine, driven by ``lguestfs.fs``:

* a :class:`DeviceHandle` is one ``open()`` of ``MOUNT/lguest``: fresh and uninitialised, it
  becomes a guest's *owner* with INITIALIZE, and its reads run that guest;
* a :class:`WakerHandle` is one ``open()`` of ``MOUNT/guests/<pid>/waker``: a non-owner attached
  to that guest, which on this kernel plays the part of the Waker's inherited descriptor (it may
  only BREAK; see ``lguestfs.fs`` for why it cannot share the launcher's descriptor);
* a :class:`Session` is what INITIALIZE creates: the guest, its break flag, its counters.

The owner is 2.6.24's ``lg->tsk``: the thread that made INITIALIZE, on that handle.  Every
request knows its own caller (``lguestfs.callers``), so, as in ``lguest_user.c``, only that
thread may read or write anything but BREAK; any task holding the descriptor (a forked Waker)
or a ``waker`` handle may BREAK.  INITIALIZE maps the memory of the process that makes it, and a
held read or BREAK watches the thread that made it.  The checks run
in the kernel's order, first match wins, and every errno that a misbehaving launcher can provoke
is logged with its reason.

Reads and BREAK 1 writes block without holding the trio thread.  A read runs the guest on trio's
thread for at most ``guest.INLINE_FOR`` (most notify round trips end there, without a thread
hop); the rest runs on the guest's own thread (``lguestfs.guest``), which reports back through
``on_exit`` and ``run_sync_soon``.  Meanwhile one :class:`Watcher` task looks at every held
request's thread each ``POLL_INTERVAL`` for a signal that 2.6.24 would have acted on (one that runs
a handler or ends the process: ``callers.interrupting_signal``), and wakes requests whose guest
was released.

Path: launcher -> node (``fs``) -> **handle** -> guest (``guest``) -> CPU -> hypercall -> back.
"""

import contextlib
import errno
import logging
import mmap
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import pyfuse3
import trio

from lguestfs import adopt, sharing
from lguestfs.abi import (
    INITIALIZE_ARGS,
    LGUEST_IRQS,
    LHREQ_BREAK,
    LHREQ_INITIALIZE,
    LHREQ_IRQ,
    REQUEST_NAMES,
)
from lguestfs.callers import Caller, CallerGoneError, DaemonOutOfFilesError, HeldThread, ThreadState
from lguestfs.cpu import CpuError
from lguestfs.guest import Guest, GuestContract, RunExit
from lguestfs.memory import GuestMemory
from lguestfs.node import guest_name

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.01  # seconds between looks at held requests' callers (signals, closing)
STOP_GRACE = 1.0  # seconds a guest may take to stop for a signal before its read ends anyway
CLOSE_GRACE = 5.0  # seconds a guest may take to close before the daemon stops waiting for it
WORD_CODES = {4: "I", 8: "Q"}  # struct codes of the caller's unsigned long
# Blocked BREAK 1 writers, each holding one of pyfuse3's workers (``fs.MAX_TASKS``): one guest may
# keep this many (2.6.24's launcher had one Waker), the daemon this many in all, so that workers
# are always left for every guest's read, the owner's BREAK 0 and newcomers.  Past either, BREAK 1
# answers EAGAIN at once (the kernel had no bound: README's differences).
HELD_BREAKS_PER_GUEST = 16
HELD_BREAKS = 256


def fail(code: int, why: str, level: int = logging.INFO) -> NoReturn:
    """Answer the request with ``code``, after saying why in the log."""
    log.log(level, "%s: %s", errno.errorcode[code], why)
    raise pyfuse3.FUSEError(code)


def words(data: bytes, word_bytes: int, count: int) -> tuple[int, ...] | None:
    """The first ``count`` words of a write, or None if it is too short (the kernel's fault)."""
    if len(data) < count * word_bytes:
        return None
    return struct.unpack_from(f"<{count}{WORD_CODES[word_bytes]}", data)


def start_guest(caller: Caller, base: int, pfnlimit: int, pgdir: int, start: int) -> Guest:
    """INITIALIZE's real work, off the trio thread: share the caller's memory, build the guest.

    A 32-bit caller's private memory is copied and adopted (``adopt``): the caller is seized
    here and its mapping replaced once it returns from the INITIALIZE write."""
    adoption = None
    with caller.proc_dir() as proc_dir:
        try:
            backing: mmap.mmap = sharing.share_launcher_memory(proc_dir, base, pfnlimit)
        except sharing.PrivateMemoryError as private:
            if caller.word_bytes != adopt.I386_WORD_BYTES:
                raise sharing.SharingError(f"{private}: use a memfd or MAP_SHARED") from None
            adoption, backing = adopt.prepare(caller, proc_dir, base, pfnlimit, private.prot)
    if adoption is None:
        return build_guest(caller, backing, pfnlimit, pgdir, start)
    with contextlib.closing(adoption):  # its descriptors, unless its thread has taken them
        guest = build_guest(caller, backing, pfnlimit, pgdir, start)
        try:
            adoption.stop_caller(guest.kill_from_outside)
        except BaseException:
            guest.close()
            raise
    return guest


def build_guest(caller: Caller, backing: mmap.mmap, pfnlimit: int, pgdir: int, start: int) -> Guest:
    """A guest on ``backing`` (unmapped if the guest cannot be built)."""
    try:
        memory = GuestMemory(backing, pfnlimit)
    except BaseException:
        backing.close()
        raise
    try:
        return Guest(memory, pgdir, start, name=f"guest-{caller.pid}")
    except BaseException:
        memory.close()
        raise


GuestStarter = Callable[[Caller, int, int, int, int], GuestContract]


@dataclass
class Counters:
    """What ``guests/<pid>/status`` counts on the protocol side."""

    reads: int = 0  # reads that ran the guest
    notifies: int = 0  # reads that returned a NOTIFY address
    breaks: int = 0  # BREAK 1 requests
    irqs_sent: int = 0  # LHREQ_IRQ requests that made an irq pending
    signals: int = 0  # reads ended by a signal (EINTR)


@dataclass(eq=False)
class Held:
    """A request we are holding (a read, a BREAK 1): whose it is, and how to end it early."""

    thread: HeldThread  # the thread that made the request (not the handle's opener)
    session: "Session"
    on_signal: Callable[[], None]  # a read interrupts the guest; a breaker just wakes up
    wake: trio.Event  # set to make the holder look again (closing, giving up)
    signalled_at: float | None = None
    abandoned: bool = False  # the guest ignored the signal for STOP_GRACE: answer anyway

    @property
    def signalled(self) -> bool:
        return self.signalled_at is not None

    def look(self, now: float) -> None:
        self.session.guest.check_memory()
        if self.session.closed_errno:
            self.wake.set()
        elif self.signalled_at is None:
            try:
                state = self.thread.state()
            except DaemonOutOfFilesError as error:  # look again next time
                log.warning("cannot watch a held request for signals: %s", error)
                return
            if state is not ThreadState.WAITING:
                name, thread = self.session.name, self.thread
                log.debug("%s: %s %s (%s): the request ends", name, thread, state.value, thread.why)
                self.signalled_at = now
                self.on_signal()
        elif now - self.signalled_at > STOP_GRACE and not self.abandoned:
            self.abandoned = True
            self.wake.set()


class Watcher:
    """One task looks at every held request's caller each ``POLL_INTERVAL``.

    Held requests must notice signals (FUSE_INTERRUPT never comes) and a release under them.
    Doing it here, rather than with a timeout in each request, keeps the read path free of
    cancel scopes: a notify round trip pays one ``set.add`` and one ``set.discard``.
    """

    def __init__(self) -> None:
        self._held: set[Held] = set()
        self._idle: trio.Event | None = None
        self._running = False
        self.breaks_held = 0  # blocked BREAK 1 writers of every guest (bounded by HELD_BREAKS)

    def hold(self, held: Held) -> None:
        self._held.add(held)
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._watch, name="lguestfs-watcher")
        elif self._idle is not None:
            self._idle.set()

    def release(self, held: Held) -> None:
        self._held.discard(held)
        held.thread.close()

    async def _watch(self) -> None:
        while True:
            if not self._held:
                self._idle = trio.Event()
                await self._idle.wait()
                self._idle = None
            await trio.sleep(POLL_INTERVAL)
            now = trio.current_time()
            for held in list(self._held):
                try:
                    held.look(now)
                except Exception:  # a bug here must not end the daemon (this is a system task)
                    log.exception("internal error while watching %s", held.thread)
                    self.release(held)
                    held.abandoned = True  # the request ends now rather than wait unwatched
                    held.wake.set()


@dataclass
class Session:
    """One initialised guest: what INITIALIZE creates and the owner's release destroys."""

    guest: GuestContract
    owner: Caller
    base: int
    pfnlimit: int
    watcher: Watcher
    name: str = ""  # the directory under guests/, set by the Registry
    counters: Counters = field(default_factory=Counters)
    death_reported: bool = False  # a read answered ENOENT for the death; later ones the text
    closed_errno: int = 0  # nonzero once released or shut down: what held requests answer
    break_on: bool = False
    running: bool = False
    breaks_held: int = 0  # this guest's blocked BREAK 1 writers (bounded by HELD_BREAKS_PER_GUEST)
    _breakers: set[trio.Event] = field(default_factory=set)  # one per blocked BREAK 1 writer
    _exit: tuple[RunExit, int] | None = None
    _exit_arrived: trio.Event = field(default_factory=trio.Event)
    _token: trio.lowlevel.TrioToken = field(default_factory=trio.lowlevel.current_trio_token)
    _trio_thread: int = field(default_factory=threading.get_ident)

    @property
    def dead(self) -> bool:
        return self.death_reported or self.guest.death is not None

    # --- BREAK (spec 1.2, 1.5) ------------------------------------------------------------

    def set_break(self) -> None:
        self.break_on = True
        self.counters.breaks += 1
        self.guest.set_break(True)

    def clear_break(self) -> None:
        self.guest.set_break(False)
        self.break_on = False
        self._wake_breakers()

    def _wake_breakers(self) -> None:
        for woken in self._breakers:
            woken.set()
        self._breakers.clear()

    def check_break_room(self, breaker: int) -> None:
        """EAGAIN for a BREAK 1 writer (thread ``breaker``) that would be one too many to hold
        (``HELD_BREAKS_PER_GUEST``, ``HELD_BREAKS``)."""
        if self.breaks_held >= HELD_BREAKS_PER_GUEST:
            why = f"{HELD_BREAKS_PER_GUEST} BREAK 1 writers already held on this guest"
        elif self.watcher.breaks_held >= HELD_BREAKS:
            why = f"{HELD_BREAKS} BREAK 1 writers already held by the daemon"
        else:
            return
        fail(
            errno.EAGAIN, f"{self.name}: BREAK by thread {breaker} refused: {why}", logging.WARNING
        )

    async def wait_break_cleared(self, breaker: int) -> None:
        """Block a BREAK 1 writer (thread ``breaker``) until someone writes BREAK 0; a signal that
        runs a handler or ends the process ends it with EINTR."""
        self.breaks_held += 1
        self.watcher.breaks_held += 1
        try:
            await self._wait_break_cleared(breaker)
        finally:
            self.breaks_held -= 1
            self.watcher.breaks_held -= 1

    async def _wait_break_cleared(self, breaker: int) -> None:
        while self.break_on:
            woken = trio.Event()
            held = Held(HeldThread(breaker), self, woken.set, woken)
            self._breakers.add(woken)
            self.watcher.hold(held)
            try:
                await woken.wait()
            finally:
                self.watcher.release(held)
                self._breakers.discard(woken)
            self._check_open()
            if held.signalled and self.break_on:
                why = held.thread.why
                fail(errno.EINTR, f"{self.name}: BREAK by {held.thread}: {why}", logging.DEBUG)

    # --- Running the guest (spec 1.3 step 5, spec 2) ---------------------------------------

    def _on_exit(self, kind: RunExit, value: int) -> None:
        """Called once per run: inside ``guest.run()`` on trio's thread when the run ended there,
        otherwise on the guest's thread, which hands the result to trio, cheaply."""
        if threading.get_ident() == self._trio_thread:
            self._exit_reached(kind, value)
            return
        with contextlib.suppress(trio.RunFinishedError):  # the daemon is gone: nobody waits
            self._token.run_sync_soon(self._exit_reached, kind, value)

    def _exit_reached(self, kind: RunExit, value: int) -> None:
        self._exit = (kind, value)
        self.running = False
        self._exit_arrived.set()

    async def run(self, reader: int) -> tuple[RunExit, int]:
        """Run the guest for one read by thread ``reader``; held until it exits.

        A signal to the reader that runs a handler or ends its process makes the watcher
        interrupt the guest, so the run ends with
        SIGNAL (unless a notify or the death got there first, as in the kernel's loop).  A guest
        that does not stop within ``STOP_GRACE`` (a Host bug) does not keep the launcher
        unkillable: the read ends with EINTR anyway, and later reads are EBUSY until it stops.
        """
        self._exit = None
        self.running = True
        self.guest.run(self._on_exit)
        if self._exit is not None:  # it ended on this thread: nothing was held
            return self._exit
        # The exit can only arrive at an await (run_sync_soon), so this event is in time for it.
        arrived = self._exit_arrived = trio.Event()
        held = Held(HeldThread(reader), self, self.guest.interrupt, arrived)
        self.watcher.hold(held)
        try:
            while self._exit is None:
                await arrived.wait()
                self._check_open()  # otherwise ``arrived`` is set without an exit only...
                if held.abandoned:  # ...when the guest ignored the signal
                    fail(
                        errno.EINTR,
                        f"{self.name}: internal error: the guest ignored a signal; read ended",
                        logging.WARNING,
                    )
            return self._exit
        finally:
            self.watcher.release(held)

    def _check_open(self) -> None:
        if self.closed_errno:
            fail(self.closed_errno, f"{self.name}: released under a held request", logging.DEBUG)

    # --- The end ----------------------------------------------------------------------------

    def close(self, code: int) -> None:
        """Mark released: held requests answer ``code`` at their next look.  Idempotent."""
        if not self.closed_errno:
            self.closed_errno = code
            self._wake_breakers()
            self._exit_arrived.set()


class Registry:
    """Every live session, by its name under ``guests/``: the launcher's pid.

    A process that initialises a second handle while its first guest lives gets ``<pid>.2``.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.watcher = Watcher()

    def add(self, session: Session) -> None:
        serial = 1
        while (name := guest_name(session.owner.pid, serial)) in self.sessions:
            serial += 1
        session.name = name
        self.sessions[name] = session

    def remove(self, session: Session) -> None:
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]


class Handle:
    """What both kinds of handle share: the caller, the word size, and the request check order."""

    session: Session | None = None
    is_owner = False

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.word_bytes = caller.word_bytes

    def __repr__(self) -> str:
        if self.session is None:
            return f"fresh handle [{self.caller}]"
        role = "owner" if self.is_owner else "waker"
        return f"{role} of guest {self.session.name} [{self.caller}]"

    async def write(self, data: bytes, tid: int) -> int:
        """The checks of spec 1.2, in order; then dispatch.  ``tid``: the writing thread."""
        request = words(data, self.word_bytes, 1)
        if request is None:
            fail(errno.EFAULT, f"{self}: write of {len(data)} bytes has no request word")
        req = request[0]
        name = REQUEST_NAMES.get(req, str(req))
        session = self.session
        if session is None:
            if req != LHREQ_INITIALIZE:
                fail(errno.EINVAL, f"{self}: {name} before INITIALIZE")
            return await self.initialize(data, tid)
        if session.closed_errno:
            fail(session.closed_errno, f"{self}: {name}: the guest is gone")
        if session.dead:
            fail(errno.ENOENT, f"{self}: {name}: the guest is dead", logging.DEBUG)
        if req != LHREQ_BREAK and not self.owned_by(tid):
            fail(errno.EPERM, f"{self}: {name} from thread {tid}, not the owner (only BREAK)")
        if req == LHREQ_INITIALIZE:
            fail(errno.EBUSY, f"{self}: INITIALIZE again")
        if req == LHREQ_IRQ:
            return self.irq(session, data)
        if req == LHREQ_BREAK:
            return await self.break_(session, data, tid)
        fail(errno.EINVAL, f"{self}: unknown request {name}")

    def owned_by(self, tid: int) -> bool:
        """2.6.24's ``current == lg->tsk``: the owner's handle, used by the INITIALIZE thread."""
        return self.is_owner and self.session is not None and self.session.owner.tid == tid

    async def initialize(self, data: bytes, tid: int) -> int:
        fail(errno.EPERM, f"{self}: INITIALIZE on a waker")  # only a DeviceHandle may initialise

    def irq(self, session: Session, data: bytes) -> int:
        args = words(data, self.word_bytes, 2)
        if args is None:
            fail(errno.EFAULT, f"{self}: IRQ without its argument word")
        irq = args[1]
        if irq >= LGUEST_IRQS:
            fail(errno.EINVAL, f"{self}: IRQ {irq} out of range (0..{LGUEST_IRQS - 1})")
        session.guest.raise_irq(irq)
        session.counters.irqs_sent += 1
        return 0

    async def break_(self, session: Session, data: bytes, tid: int) -> int:
        args = words(data, self.word_bytes, 2)
        if args is None:
            fail(errno.EFAULT, f"{self}: BREAK without its argument word")
        if args[1] == 0:
            session.clear_break()
            return 0
        session.check_break_room(tid)
        session.set_break()
        await session.wait_break_cleared(tid)
        return 0

    async def read(self, size: int, tid: int) -> bytes:
        """The checks of spec 1.3 that every handle shares: uninitialised, then not the owner.

        ``tid``: the reading thread; 2.6.24 answered EPERM to every task but the owner."""
        if self.session is None:
            fail(errno.EINVAL, f"{self}: read before INITIALIZE")
        fail(errno.EPERM, f"{self}: read from thread {tid}, not the owner")

    async def release(self) -> None:
        return None


class DeviceHandle(Handle):
    """One ``open()`` of ``MOUNT/lguest``: uninitialised until INITIALIZE makes it an owner."""

    def __init__(self, caller: Caller, registry: Registry, starter: GuestStarter = start_guest):
        super().__init__(caller)
        self.registry = registry
        self.starter = starter
        self.starting = False

    async def initialize(self, data: bytes, tid: int) -> int:
        """Make this handle the owner of a guest whose memory is that of the process making the
        INITIALIZE (thread ``tid``), whoever opened the handle: never a third process's."""
        args = words(data, self.word_bytes, 1 + INITIALIZE_ARGS)
        if args is None:
            fail(errno.EFAULT, f"{self}: INITIALIZE needs {INITIALIZE_ARGS} argument words")
        if self.starting:  # another thread sharing the descriptor got here first
            fail(errno.EBUSY, f"{self}: INITIALIZE already in progress")
        base, pfnlimit, pgdir, start = args[1:]
        self.starting = True
        try:
            caller = Caller(tid)  # held: it cannot go (callers, fact 2), nor can its memory
            start_args = (caller, base, pfnlimit, pgdir, start)
            guest = await trio.to_thread.run_sync(self.starter, *start_args)
        except DaemonOutOfFilesError as error:
            fail(
                error.errno,
                f"{self}: INITIALIZE: the daemon is out of descriptors: {error}",
                logging.ERROR,
            )
        except CallerGoneError as error:
            fail(errno.ESRCH, f"{self}: INITIALIZE: the caller has gone: {error}")
        except sharing.SharingError as error:
            fail(
                errno.EFAULT,
                f"{self}: INITIALIZE: guest memory cannot be shared: {error}",
                logging.WARNING,
            )
        except MemoryError as error:
            fail(errno.ENOMEM, f"{self}: INITIALIZE: {error}", logging.WARNING)
        except CpuError as error:  # like the kernel's failed allocations at INITIALIZE
            fail(errno.ENOMEM, f"{self}: INITIALIZE: no CPU for the guest: {error}", logging.ERROR)
        finally:
            self.starting = False
        self.session = Session(guest, caller, base, pfnlimit, self.registry.watcher)
        self.is_owner = True
        self.registry.add(self.session)
        log.info(
            "%s: INITIALIZE base %#x pfnlimit %#x pgdir %#x start %#x",
            self,
            base,
            pfnlimit,
            pgdir,
            start,
        )
        return INITIALIZE_ARGS * self.word_bytes

    async def read(self, size: int, tid: int) -> bytes:
        session = self.session
        if session is None or not self.owned_by(tid):
            return await super().read(size, tid)
        if session.closed_errno:
            fail(session.closed_errno, f"{self}: read: the guest is gone")
        session.guest.check_memory()
        if session.dead:
            return self.death_report(session, size)
        if session.running:
            fail(errno.EBUSY, f"{self}: the guest is still running an earlier read")
        session.counters.reads += 1
        kind, value = await session.run(tid)
        if session.guest.check_memory():  # lost during the run: what the guest did there is void
            kind = RunExit.DIED
        if kind is RunExit.NOTIFY:
            if size < self.word_bytes:
                fail(errno.EFAULT, f"{self}: notify {value:#x} lost: a {size}-byte read")
            session.counters.notifies += 1
            return struct.pack(f"<{WORD_CODES[self.word_bytes]}", value)
        if kind is RunExit.BREAK:
            fail(errno.EAGAIN, f"{self}: break", logging.DEBUG)
        if kind is RunExit.SIGNAL:
            session.counters.signals += 1
            fail(errno.EINTR, f"{self}: the reader got a signal", logging.DEBUG)
        session.death_reported = True
        log.info("%s: the guest died: %s", self, session.guest.death)
        fail(errno.ENOENT, f"{self}: the guest died during this read", logging.DEBUG)

    def death_report(self, session: Session, size: int) -> bytes:
        """Every read after the death: the reason, NUL included if it fits (spec 1.3 step 3)."""
        reason = session.guest.death
        if reason is None:  # the guest died before its reason could be made (MemoryError)
            fail(errno.ENOMEM, f"{self}: the guest died without a reason")
        text = reason.encode("utf-8", "surrogateescape") + b"\0"  # the guest's own bytes
        return text[:size]

    async def release(self) -> None:
        """Last close of the owner's descriptor: stop the guest and free everything (spec 1.4)."""
        session = self.session
        if session is not None:
            await close_session(self.registry, session, errno.ENOENT)
        await super().release()


async def close_session(registry: Registry, session: Session, code: int) -> None:
    """Stop and free one guest; held requests on it answer ``code``."""
    registry.remove(session)
    session.close(code)
    with trio.move_on_after(CLOSE_GRACE) as waited:
        await trio.to_thread.run_sync(session.guest.close, abandon_on_cancel=True)
    if waited.cancelled_caught:  # a Host bug: never let it keep the daemon from going on
        log.error("internal error: guest %s ignored close for %s s", session.name, CLOSE_GRACE)
    else:
        log.info("guest %s released", session.name)


class WakerHandle(Handle):
    """One ``open()`` of ``guests/<pid>/waker``: a non-owner of that guest, good for BREAK only."""

    def __init__(self, caller: Caller, session: Session) -> None:
        super().__init__(caller)
        self.session = session
