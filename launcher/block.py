"""The virtio block device: a file on the host is the guest's disk (spec 8 and 9).

One queue.  Config: capacity (0x41, u64 sectors of 512 bytes: the file's size, rounded down) and
seg_max (0x43, u32 126).  Each request is a chain of: the 24-byte ``virtio_blk_outhdr`` (u32 type,
u32 ioprio, u64 sector, u64 id), the data buffers (read-only for a write, writable for a read),
and a last, writable, 1-byte status.

* type has BARRIER (0x80000000): ``fdatasync`` the file first (the guest wants what it wrote before
  to be on disk before what comes after);
* SCSI command (2): not supported, status UNSUPP;
* OUT (1): write the read-only data buffers at ``sector * 512``; a write that would go past the
  end of the file is refused before anything is written (2.6.24 wrote, truncated back and died:
  here the file is never grown either, and the guest is stopped the same way);
* otherwise a read into the writable buffers; the used length is 1 + bytes read.

The file is locked (``flock``) for as long as the launcher runs: two guests writing one disk
would corrupt it, so a second launcher is refused.

2.6.24 served requests on an I/O thread and signalled completion through the waker; here each
kick is served at once, in the launcher's main loop, and the interrupt is raised directly.
"""

import fcntl
import os
import struct
from pathlib import Path

from launcher.devices import DeviceTable
from launcher.errors import GuestBroke, LaunchError
from launcher.virtqueue import Chain, Direction, views
from lguestfs.abi import (
    BLOCK_SEG_MAX,
    SECTOR_SIZE,
    VIRTIO_BLK_F_CAPACITY,
    VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_OUTHDR_BYTES,
    VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_BARRIER,
    VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_SCSI_CMD,
    VIRTIO_ID_BLOCK,
)

OUTHDR = struct.Struct("<IIQQ")  # type, ioprio, sector, id
STATUS_BYTES = 1


class Block:
    def __init__(self, table: DeviceTable, path: Path) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LaunchError(f"--block={path}: no such file") from None
        except OSError as error:
            raise LaunchError(
                f"--block={path}: cannot open for reading and writing: {error.strerror}"
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # one guest per disk
        except BlockingIOError:
            os.close(self.fd)
            raise LaunchError(f"--block={path}: in use by another launcher") from None
        self.path = path
        self.size = os.lseek(self.fd, 0, os.SEEK_END)  # works for block devices too
        self.table = table
        device = table.add_device(VIRTIO_ID_BLOCK, f"block {path.name}")
        self.queue = table.add_queue(device, "requests", Direction.REQUEST, self.serve)
        table.add_field(device, VIRTIO_BLK_F_CAPACITY, struct.pack("<Q", self.size // SECTOR_SIZE))
        table.add_field(device, VIRTIO_BLK_F_SEG_MAX, struct.pack("<I", BLOCK_SEG_MAX))
        table.verbose(f"{device.name}: {self.size // SECTOR_SIZE} sectors from {path}")

    def serve(self) -> None:
        """Do every request the guest queued, then interrupt it once."""
        served = False
        while (chain := self.queue.pop()) is not None:
            self.queue.push_used(chain.head, self.handle(chain))
            served = True
        if served:
            self.table.trigger(self.queue)

    def handle(self, chain: Chain) -> int:
        """Do one request; returns the used length (bytes written into the guest's buffers)."""
        header, status = chain.readable[0], chain.writable[-1]
        if header.length != VIRTIO_BLK_OUTHDR_BYTES:
            raise self._broke(chain, f"the header is {header.length} bytes, not 24")
        if status.length != STATUS_BYTES:
            raise self._broke(chain, f"the status buffer is {status.length} bytes, not 1")
        memory = self.table.guest.memory
        request_type, _ioprio, sector, _id = OUTHDR.unpack_from(memory, header.address)
        offset = sector * SECTOR_SIZE
        if request_type & VIRTIO_BLK_T_BARRIER:
            os.fdatasync(self.fd)
        if request_type & VIRTIO_BLK_T_SCSI_CMD:
            memory[status.address] = VIRTIO_BLK_S_UNSUPP
            return STATUS_BYTES
        view = memoryview(memory)
        if request_type & VIRTIO_BLK_T_OUT:
            data = chain.readable[1:]
            length = sum(buffer.length for buffer in data)
            if offset + length > self.size:
                raise GuestBroke(
                    f"guest wrote past the end of {self.path}: {length} bytes at sector {sector} "
                    f"(offset {offset}) but the file is {self.size} bytes; refused"
                )
            try:
                os.pwritev(self.fd, views(view, data), offset)
                memory[status.address] = VIRTIO_BLK_S_OK
            except OSError:
                memory[status.address] = VIRTIO_BLK_S_IOERR
            return STATUS_BYTES
        try:
            got = os.preadv(self.fd, views(view, chain.writable[:-1]), offset)
        except OSError:
            memory[status.address] = VIRTIO_BLK_S_IOERR
            return STATUS_BYTES
        memory[status.address] = VIRTIO_BLK_S_OK
        return STATUS_BYTES + got

    def _broke(self, chain: Chain, rule: str) -> GuestBroke:
        return self.queue.broke(f"request {chain.head}: {rule}")
