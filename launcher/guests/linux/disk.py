"""The guest's disk: a small ext2 image made on the host with ``mke2fs``, copied per session.

``build_disk_template`` makes ``<cache>/linux/disk-<key>.ext2`` once: ``DISK_MB`` MB, ext2
with 1 KB blocks, labelled ``lguest``, holding ``README`` (what the disk is).  ``/init`` mounts
``/dev/vda`` on ``/mnt``.  The template is never attached itself: ``copy_disk`` gives each
session its own copy, so what a guest writes stays in that copy and can be read on the host
after ``poweroff`` (``debugfs -R 'cat /FILE' IMAGE``).  2.6.24's ext2 reads the features
``mke2fs -t ext2`` sets today (the newer ones, such as ``metadata_csum``, are ext4's).
"""

import shutil
import tempfile
from pathlib import Path

from launcher.guests.linux.steps import Steps

DISK_MB = 16
LABEL = "lguest"
README = (
    "This is the lguestfs Linux guest's disk (ext2, made by launcher/guests/linux/disk.py).\n"
    "The guest mounts it on /mnt; what you write there survives poweroff.\n"
)
MKE2FS = "mke2fs"
RECIPE: tuple[str, ...] = ("-q", "-F", "-t", "ext2", "-b", "1024", "-L", LABEL)


def build_disk_template(output: Path, steps: Steps) -> None:
    steps.say(f"making a {DISK_MB} MB ext2 disk")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".disk-") as scratch:
        content = Path(scratch) / "content"
        content.mkdir()
        (content / "README").write_text(README)
        staged = Path(scratch) / "disk.ext2"
        steps.run(
            "making the ext2 disk",
            [MKE2FS, *RECIPE, "-d", str(content), str(staged), f"{DISK_MB}M"],
        )
        staged.replace(output)


def copy_disk(template: Path, destination: Path) -> Path:
    """A fresh copy of the disk template at ``destination`` (for one session or test)."""
    shutil.copyfile(template, destination)
    return destination
