"""The FUSE side of the node: the file tree, inode numbers, and the handles behind descriptors.

The tree a mounted lguestfs shows::

    MOUNT/lguest               0600  the device: every open() is a fresh, uninitialised handle
    MOUNT/guests/<pid>/        0755  one per initialised handle, named after the launcher's pid
    MOUNT/guests/<pid>/waker   0600  a non-owner handle on that guest: BREAK only
    MOUNT/guests/<pid>/status  0444  text: state, reason, sizes, counters

This module turns pyfuse3's calls into those nodes and hands reads and writes to the handles of
``lguestfs.protocol``.  It is shaped by what the FUSE kernel on this machine does (kernel 6.18,
libfuse 3.14, pyfuse3 3.5, measured with small test daemons); the facts, and what the code does
about them (the callers' side: ``lguestfs.callers``):

Some facts about a FUSE regular file standing in for a character device
------------------------------------------------------------------------
1. **There is no character device.**  No CUSE in this kernel, and a FUSE mount is ``nodev``: the
   node is a regular file, opened with ``direct_io`` (every read and write reaches us, with the
   caller's size) and ``nonseekable`` (offsets mean nothing, as on ``/dev/lguest``).
2. **The f_pos lock.**  Reads and writes on one ``struct file`` shared by two threads or
   processes are serialised by the kernel, unless the open is answered with ``FOPEN_STREAM``
   (protocol 7.31: the file has no position at all).  In 2.6.24 the Waker inherited the
   launcher's descriptor and wrote BREAK while the launcher sat in read(): so ``lguest`` and
   ``waker`` opens are answered with ``FOPEN_STREAM`` (libfuse 3.14 cannot send it; the
   project's pyfuse3 build can: ``patches/pyfuse3/``, ``FileInfo.open_flags``).
3. **The inode lock.**  A direct write held by the daemon keeps the inode's ``i_rwsem``
   exclusively, so every other write to the same inode, from any descriptor, waits for it: a
   Waker held in BREAK 1 would block the launcher's BREAK 0 for ever.  Two things lift it, and
   the daemon does both: ``FOPEN_PARALLEL_DIRECT_WRITES`` (7.36) takes the lock shared for a
   direct write that does not extend the file, so ``lguest`` and ``waker`` report a size
   (``DEVICE_SIZE``) beyond any write; and **every lookup of ``lguest`` and ``waker`` gets a
   fresh inode number** (entry and attribute timeouts 0), so no two opens share an inode
   anyway.  Numbers are kept until the kernel FORGETs them.  Measured: with all three flags and
   the size, a forked child's BREAK 1 on the shared descriptor, and the parent's BREAK 0, go
   through while the parent's read is held; with any of them missing, they deadlock.  A kernel
   older than 7.36 ignores the flags it does not know (its protocol is logged at mount, with a
   warning): there only a waker with its own handle (``guests/<pid>/waker``) can break.
4. **No FUSE_INTERRUPT.**  pyfuse3 drops it, so a signal never reaches a handler.  A thread
   blocked in our read that gets a signal, SIGKILL included, sleeps uninterruptibly until we
   answer.  So every 10 ms one watcher task (``protocol.Watcher``) looks at the thread of every
   held request in ``/proc`` (``lguestfs.callers``): a signal that will run a handler or end the
   process interrupts the guest and the request answers EINTR; a stop, SIGCONT, a ptrace attach
   or an ignored or blocked signal leaves it held, as 2.6.24's restart would have (FUSE cannot
   answer -ERESTARTSYS).  A released guest or a daemon shutting down wakes it too.  An aborted
   connection (``umount -f``) is noticed by ``cli`` within a second.
5. **Every request names its caller.**  The kernel sends the calling thread's id with every
   request; the project's pyfuse3 build hands it to every handler (``callers.request_tid``).
   So roles follow 2.6.24: the owner is the thread that made INITIALIZE (only it may read or
   send anything but BREAK; EPERM otherwise), any task holding the descriptor may BREAK, the
   thread watched for signals is the one that made the request, and INITIALIZE maps the memory
   of the process that made it.
6. **flush is not release.**  FLUSH comes on every ``close()`` of any copy of a descriptor (a
   forked child exiting, close-on-exec); RELEASE on the last.  Only release frees a guest; flush
   does nothing, but must exist (ENOSYS would switch it off for the whole mount).
7. **Descriptors.**  A handle holds no descriptor of the daemon's at rest (``callers``, fact 6)
   and a held request one; the daemon raises its soft RLIMIT_NOFILE to the hard limit at start
   (``cli``), and one process may hold at most ``MAX_HANDLES_PER_PROCESS`` handles (EMFILE past
   that, like a process's own descriptor table).  A daemon out of descriptors answers EMFILE or
   ENFILE and says so in the log.
8. **Held requests use up workers.**  Each held read or BREAK occupies one pyfuse3 worker task;
   past ``max_tasks`` even release would queue behind them, so the daemon allows a thousand
   (``MAX_TASKS``): hundreds of guests, each with a held read and a held BREAK.  Held BREAK 1s
   are bounded (``protocol.HELD_BREAKS_PER_GUEST``, ``protocol.HELD_BREAKS``, well below
   ``MAX_TASKS``), so that a launcher holding a thousand wakers in BREAK cannot take them all.
9. **Death and unmount.**  A launcher killed while idle: FLUSH and RELEASE arrive within a
   millisecond.  A daemon killed under a held read: the read fails with ECONNABORTED, later calls
   with ENOTCONN, and the mount point stays dead until ``fusermount3 -u`` (``-u -z`` while
   descriptors are open); ``cli`` recovers such a mount point.  A plain unmount with a held read
   is refused as busy; a lazy one lets the read finish but RELEASE never comes; ``umount -f`` or
   fusectl's ``abort`` aborts the connection.  Held requests must therefore wake by themselves
   (the watcher's ``POLL_INTERVAL``), never wait on an event alone: an aborted connection would
   otherwise leave ``pyfuse3.main()`` waiting for them for ever.

Path: launcher -> **node** -> handle (``protocol``) -> guest -> CPU -> hypercall -> back.
"""

import collections
import enum
import errno
import functools
import logging
import os
import stat
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from lguestfs import status
from lguestfs.callers import Caller, CallerGoneError, DaemonOutOfFilesError, request_tid
from lguestfs.node import GUESTS_NAME, NODE_NAME, STATUS_NAME, WAKER_NAME
from lguestfs.protocol import (
    DeviceHandle,
    GuestStarter,
    Handle,
    Registry,
    Session,
    WakerHandle,
    close_session,
    start_guest,
)

log = logging.getLogger(__name__)

# pyfuse3 worker tasks: one per held read or BREAK, plus the ordinary traffic.  A busy worker
# holds a ~136 KiB request buffer, so this also bounds the daemon's memory under a flood.
MAX_TASKS = 1000
# Handles (``lguest`` and ``waker`` opens) one process may hold at once: a launcher needs two or
# three; the bound keeps one process from filling the daemon's tables (EMFILE past it).
MAX_HANDLES_PER_PROCESS = 256
GUESTS_INODE = pyfuse3.ROOT_INODE + 1
# How ``lguest`` and ``waker`` are opened (facts 1 to 3): every read and write reaches us with
# the caller's size, no position, no f_pos lock, the inode lock shared.
DEVICE_OPEN_FLAGS = pyfuse3.OPEN_STREAM | pyfuse3.OPEN_PARALLEL_DIRECT_WRITES
# Their size: a direct write beyond it would take the inode lock exclusively (fact 3).  A stream
# has no position, so every write starts at 0, and the kernel cuts every write to at most
# MAX_RW_COUNT (2 GiB - 4 KiB) bytes.  Not more: a 32-bit program opening without O_LARGEFILE
# (2.6.24's launcher) gets EOVERFLOW from a file of 2 GiB or more.
DEVICE_SIZE = (1 << 31) - 1
# The FUSE protocol (7.x) whose kernels know FOPEN_PARALLEL_DIRECT_WRITES (and FOPEN_STREAM).
PARALLEL_WRITES_PROTOCOL = (7, 36)


class Kind(enum.Enum):
    ROOT = "root"
    GUESTS = "guests"
    DEVICE = "device"
    GUEST_DIR = "guest directory"
    WAKER = "waker"
    STATUS = "status"


MODES = {
    Kind.ROOT: stat.S_IFDIR | 0o755,
    Kind.GUESTS: stat.S_IFDIR | 0o755,
    Kind.GUEST_DIR: stat.S_IFDIR | 0o755,
    Kind.DEVICE: stat.S_IFREG | 0o600,  # like crw------- /dev/lguest
    Kind.WAKER: stat.S_IFREG | 0o600,
    Kind.STATUS: stat.S_IFREG | 0o444,
}


@dataclass
class Node:
    """One inode the kernel knows about, until it forgets it."""

    inode: int
    kind: Kind
    session: Session | None = None  # for a guest's directory, waker and status
    lookups: int = 0


class StatusText:
    """An open ``status`` file: the text as it was at open()."""

    def __init__(self, text: str) -> None:
        self.data = text.encode()


P = ParamSpec("P")
R = TypeVar("R")


def guarded(handler: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """A bug in a handler must never take the daemon down: log it with its traceback, answer EIO."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("internal error in %s", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class Inodes:
    """The node tree's inodes: ``lguest``, ``guests/``, ``guests/<pid>/{waker,status}`` (fact 3:
    every lookup of ``lguest``, ``waker`` and ``status`` gets a fresh one, kept until FORGET)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.nodes: dict[int, Node] = {
            pyfuse3.ROOT_INODE: Node(pyfuse3.ROOT_INODE, Kind.ROOT),
            GUESTS_INODE: Node(GUESTS_INODE, Kind.GUESTS),
        }
        self.guest_dirs: dict[str, Node] = {}  # session name -> its directory's node
        self.next_inode = GUESTS_INODE + 1
        self.started_ns = time.time_ns()
        self.uid, self.gid = os.getuid(), os.getgid()

    def new(self, kind: Kind, session: Session | None = None) -> Node:
        node = Node(self.next_inode, kind, session)
        self.next_inode += 1
        self.nodes[node.inode] = node
        return node

    def live(self, node: Node) -> bool:
        """A guest's nodes die with the session (the owner's release)."""
        return (
            node.session is None or self._registry.sessions.get(node.session.name) is node.session
        )

    def get(self, inode: int) -> Node:
        node = self.nodes.get(inode)
        if node is None or not self.live(node):
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def guest_dir(self, session: Session) -> Node:
        node = self.guest_dirs.get(session.name)
        if node is None or node.session is not session:
            node = self.guest_dirs[session.name] = self.new(Kind.GUEST_DIR, session)
        return node

    def child(self, parent: Node, name: str) -> Node:
        """The node ``name`` in ``parent``: ``lguest``, ``waker``, ``status`` are new each time."""
        if parent.kind is Kind.ROOT:
            if name == NODE_NAME:
                return self.new(Kind.DEVICE)
            if name == GUESTS_NAME:
                return self.nodes[GUESTS_INODE]
        elif parent.kind is Kind.GUESTS:
            session = self._registry.sessions.get(name)
            if session is not None:
                return self.guest_dir(session)
        elif parent.kind is Kind.GUEST_DIR:
            if name == WAKER_NAME:
                return self.new(Kind.WAKER, parent.session)
            if name == STATUS_NAME:
                return self.new(Kind.STATUS, parent.session)
        raise pyfuse3.FUSEError(errno.ENOENT)

    def children(self, parent: Node) -> list[str]:
        if parent.kind is Kind.ROOT:
            return [NODE_NAME, GUESTS_NAME]
        if parent.kind is Kind.GUESTS:
            return sorted(self._registry.sessions)
        if parent.kind is Kind.GUEST_DIR:
            return [STATUS_NAME, WAKER_NAME]
        raise pyfuse3.FUSEError(errno.ENOTDIR)

    def forget_one(self, node: Node) -> None:
        if node.lookups <= 0 and node.inode not in (pyfuse3.ROOT_INODE, GUESTS_INODE):
            del self.nodes[node.inode]
            if node.session is not None and self.guest_dirs.get(node.session.name) is node:
                del self.guest_dirs[node.session.name]

    def attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = node.inode
        attrs.st_mode = MODES[node.kind]
        attrs.st_nlink = 2 if stat.S_ISDIR(attrs.st_mode) else 1
        attrs.st_uid, attrs.st_gid = self.uid, self.gid
        attrs.st_size = DEVICE_SIZE if node.kind in (Kind.DEVICE, Kind.WAKER) else 0
        attrs.st_blksize = 4096
        attrs.entry_timeout = attrs.attr_timeout = 0  # fresh inodes; guests come and go
        attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = self.started_ns
        return attrs


class LguestFS(pyfuse3.Operations):
    """The node tree and its handles."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, starter: GuestStarter = start_guest) -> None:
        super().__init__()
        self.registry = Registry()
        self.starter = starter
        self.inodes = Inodes(self.registry)
        self.handles: dict[int, Handle | StatusText] = {}
        self.handles_of: collections.Counter[int] = collections.Counter()  # opener pid -> handles
        self.next_fh = 1

    def init(self) -> None:
        """Mounted: say which FUSE protocol the kernel speaks (fact 3)."""
        protocol = pyfuse3.kernel_protocol()
        if protocol is not None and protocol < PARALLEL_WRITES_PROTOCOL:
            log.warning(
                "the kernel's FUSE protocol %d.%d predates parallel direct writes (7.36): a "
                "BREAK on a descriptor shared with a held read will wait for that read; wakers "
                "must open guests/<pid>/waker",
                *protocol,
            )
        elif protocol is not None:
            log.info("the kernel's FUSE protocol is %d.%d", *protocol)

    @guarded
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        node = self.inodes.child(self.inodes.get(parent_inode), os.fsdecode(name))
        node.lookups += 1
        return self.inodes.attributes(node)

    @guarded
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, count in inode_list:
            node = self.inodes.nodes.get(inode)
            if node is not None:
                node.lookups -= count
                self.inodes.forget_one(node)

    @guarded
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.inodes.attributes(self.inodes.get(inode))

    @guarded
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        """Only what a device shrugs off: O_TRUNC (``echo ... > lguest``) and time stamps."""
        node = self.inodes.get(inode)
        if fields.update_mode or fields.update_uid or fields.update_gid:
            raise pyfuse3.FUSEError(errno.EPERM)
        if fields.update_size and stat.S_ISDIR(MODES[node.kind]):
            raise pyfuse3.FUSEError(errno.EISDIR)
        return self.inodes.attributes(node)

    @guarded
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_namemax = 255
        return data

    # --- Directories ----------------------------------------------------------------------------

    @guarded
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self.inodes.children(self.inodes.get(inode))  # ENOTDIR for files
        return inode

    @guarded
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        parent = self.inodes.get(fh)
        names = self.inodes.children(parent)
        for index in range(start_id, len(names)):
            name = names[index]
            node = self.inodes.child(parent, name)
            # readdirplus: every entry the kernel accepts counts as a lookup.
            if not pyfuse3.readdir_reply(
                token, name.encode(), self.inodes.attributes(node), index + 1
            ):
                self.inodes.forget_one(node)
                return
            node.lookups += 1

    @guarded
    async def releasedir(self, fh: int) -> None:
        return None

    # --- Files ------------------------------------------------------------------------------------

    @guarded
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.inodes.get(inode)
        opened: Handle | StatusText
        if node.kind is Kind.STATUS:
            assert node.session is not None
            opened = StatusText(status.render(node.session))
        elif node.kind in (Kind.DEVICE, Kind.WAKER):
            caller = self._opener(ctx.pid)
            if node.session is None:
                opened = DeviceHandle(caller, self.registry, self.starter)
            else:
                opened = WakerHandle(caller, node.session)
            log.debug("open %s: %r", node.kind.value, opened)
        else:
            raise pyfuse3.FUSEError(errno.EISDIR)
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = opened
        if isinstance(opened, Handle):
            self.handles_of[opened.caller.pid] += 1
        if node.kind is Kind.STATUS:
            return pyfuse3.FileInfo(fh=fh, direct_io=True)
        return pyfuse3.FileInfo(
            fh=fh, direct_io=True, nonseekable=True, open_flags=DEVICE_OPEN_FLAGS
        )

    def _opener(self, tid: int) -> Caller:
        """The caller of an open of ``lguest`` or ``waker``, within its process's bound."""
        try:
            caller = Caller(tid)
        except DaemonOutOfFilesError as error:
            log.error("open refused: the daemon is out of descriptors: %s", error)
            raise pyfuse3.FUSEError(error.errno) from None
        except CallerGoneError as error:
            log.warning("open by a caller that cannot be identified: %s", error)
            raise pyfuse3.FUSEError(errno.ESRCH) from None
        if self.handles_of[caller.pid] >= MAX_HANDLES_PER_PROCESS:
            log.warning(
                "open refused: process %d holds %d handles already (the bound)",
                caller.pid,
                MAX_HANDLES_PER_PROCESS,
            )
            raise pyfuse3.FUSEError(errno.EMFILE)
        return caller

    def _handle(self, fh: int) -> Handle | StatusText:
        opened = self.handles.get(fh)
        if opened is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return opened

    @guarded
    async def read(self, fh: int, off: int, size: int) -> bytes:
        opened = self._handle(fh)
        if isinstance(opened, StatusText):
            return opened.data[off : off + size]
        return await opened.read(size, request_tid())

    @guarded
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        opened = self._handle(fh)
        if isinstance(opened, StatusText):
            raise pyfuse3.FUSEError(errno.EPERM)
        return await opened.write(buf, request_tid())

    @guarded
    async def flush(self, fh: int) -> None:
        return None  # every close() of any copy: nothing to do (release frees)

    @guarded
    async def release(self, fh: int) -> None:
        opened = self.handles.pop(fh, None)
        if isinstance(opened, Handle):
            self.handles_of[opened.caller.pid] -= 1
            if not self.handles_of[opened.caller.pid]:
                del self.handles_of[opened.caller.pid]
            log.debug("release %r", opened)
            await opened.release()

    # --- The end --------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Stop every guest, all at once; held requests answer ENOTCONN, as later calls will."""
        async with trio.open_nursery() as nursery:
            for session in list(self.registry.sessions.values()):
                nursery.start_soon(close_session, self.registry, session, errno.ENOTCONN)
