"""A cpio archive in the ``newc`` format, as the kernel's initramfs unpacker reads it.

Written here rather than with ``cpio -o`` so that device nodes (``/dev/console``, ``hvc0``,
``null``) can be put in the archive without root and every entry's owner is root.  The format
(``Documentation/early-userspace/buffer-format.txt`` in 2.6.24): per entry a 110-byte ASCII
header (magic ``070701`` and 13 eight-digit hex fields), the name and its NUL padded to 4 bytes,
the data padded to 4 bytes; the last entry is ``TRAILER!!!``.
"""

import stat

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
ALIGN = 4


def _pad(length: int) -> bytes:
    return b"\0" * (-length % ALIGN)


class Archive:
    """Entries in the order they are added; ``bytes()`` gives the archive."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.inode = 0

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self.inode += 1
        encoded = name.lstrip("/").encode() + b"\0"
        fields = (
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )  # ino, mode, uid, gid, nlink, mtime, filesize, dev major/minor, rdev, namesize, check
        header = MAGIC + b"".join(b"%08X" % field for field in fields)
        self.parts += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def __bytes__(self) -> bytes:
        ending = Archive()
        ending.inode = self.inode
        ending._entry(TRAILER, 0)
        return b"".join(self.parts + ending.parts)
