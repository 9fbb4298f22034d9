"""``lguestfs MOUNTPOINT``: mount the node, serve it in the foreground, unmount cleanly.

This is where the daemon starts: it checks the CPU emulator (``cpu.calibrate``) and the mount
point (and recovers one that a crashed daemon left dead, "Transport endpoint is not connected"),
mounts a :class:`~lguestfs.fs.LguestFS` with pyfuse3, and runs trio until SIGINT or SIGTERM, or
until someone unmounts it.  On the way out every guest is stopped and the mount is gone.
Anything that prevents mounting is one line on stderr and exit status 1.

Path: **command line** -> node (``fs``) -> handle -> guest -> CPU -> hypercall -> back.
"""

import argparse
import errno
import faulthandler
import logging
import os
import resource
import signal
import subprocess
import sys
from importlib import metadata

import pyfuse3
import trio

from lguestfs import cpu, node
from lguestfs.callers import require_request_callers
from lguestfs.fs import MAX_TASKS, LguestFS

log = logging.getLogger("lguestfs")

CONNECTION_CHECK_INTERVAL = 1.0  # seconds between looks for an aborted FUSE connection
EXIT_FAILURE = 1


class MountError(Exception):
    """The daemon cannot mount here; ``str()`` is the one line the user sees."""


def fuse_mounts() -> dict[str, str]:
    """Mount point -> file-system type, for every FUSE mount this process can see."""
    return {str(entry.point): entry.fstype for entry in node.mount_table() if entry.is_fuse}


def lazy_unmount(path: str) -> None:
    """Detach the FUSE mount at ``path`` now, even while descriptors on it are still open."""
    result = subprocess.run(
        ["fusermount3", "-u", "-z", path], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MountError(f"cannot unmount {path}: {result.stderr.strip()}")


def recover_dead_mount(path: str) -> None:
    """Unmount what a crashed daemon left at ``path``, so that we can mount again."""
    log.warning("%s: transport endpoint is not connected (a daemon died): unmounting it", path)
    lazy_unmount(path)


def check_mountpoint(path: str) -> str:
    """The absolute mount point, ready to mount on; MountError says why not."""
    if not os.path.exists("/dev/fuse"):
        raise MountError("no /dev/fuse: this kernel has no FUSE (modprobe fuse)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise MountError("no permission to use /dev/fuse")
    path = os.path.abspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MountError(f"mount point {path} does not exist") from None
    except PermissionError:
        raise MountError(f"no permission to reach mount point {path}") from None
    except OSError as error:
        if error.errno != errno.ENOTCONN:
            raise MountError(f"mount point {path}: {error.strerror}") from None
        recover_dead_mount(path)
        info = os.stat(path)
    if not os.path.isdir(path):
        raise MountError(f"mount point {path} is not a directory")
    fstype = fuse_mounts().get(path)
    if fstype is not None:
        raise MountError(f"{path} is already a live FUSE mount ({fstype})")
    if os.getuid() != 0 and (info.st_uid != os.getuid() or not os.access(path, os.W_OK)):
        raise MountError(f"no permission to mount on {path} (it must be yours and writable)")
    return path


async def watch_signals(fs: LguestFS) -> None:
    """SIGINT or SIGTERM: stop the guests, then let pyfuse3's main loop end."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: stopping the guests and unmounting", signal.Signals(signum).name)
            await fs.shutdown()
            pyfuse3.terminate()
            return


async def watch_connection(fs: LguestFS, mountpoint: str) -> None:
    """Notice a connection aborted behind our back (fusectl abort, ``umount -f``).

    Held requests would otherwise keep pyfuse3's main loop waiting for ever.  ``statvfs`` runs in
    a thread because the answer comes from this very daemon.
    """
    while True:
        await trio.sleep(CONNECTION_CHECK_INTERVAL)
        try:
            await trio.to_thread.run_sync(os.statvfs, mountpoint, abandon_on_cancel=True)
        except OSError as error:
            if error.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                log.warning("the FUSE connection was aborted: stopping")
                await fs.shutdown()
                pyfuse3.terminate()
                return


async def serve(fs: LguestFS, mountpoint: str) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals, fs)
        nursery.start_soon(watch_connection, fs, mountpoint)
        log.info("lguest node ready at %s", os.path.join(mountpoint, node.NODE_NAME))
        await pyfuse3.main(max_tasks=MAX_TASKS)
        await fs.shutdown()  # unmounted from outside: the guests go too
        nursery.cancel_scope.cancel()


def raise_descriptor_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: held requests and INITIALIZEs need descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log.debug("descriptor limit raised from %d to %d", soft, hard)


def log_unicorn_build(patches: str) -> None:
    """Say which build of Unicorn the CPU runs on (a stock one is refused by ``calibrate``)."""
    version = metadata.version("unicorn")
    log.info("CPU: Unicorn %s with the project's patches (%s)", version, patches)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lguestfs",
        description="Mount Linux 2.6.24's /dev/lguest interface as MOUNTPOINT/lguest and serve it "
        "in the foreground until SIGINT or SIGTERM.",
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="an empty directory")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="also log every open, release and refused request with its reason",
    )
    parser.add_argument(
        "--allow-other",
        action="store_true",
        help="let other users reach the mount (the node stays mode 0600, like /dev/lguest)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("pyfuse3").setLevel(logging.INFO)  # its worker bookkeeping is noise
    # A daemon that seems stuck: ``kill -USR1 <pid>`` writes every thread's stack to the log.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        calibration = cpu.calibrate()  # a Unicorn this Host does not know fails here, not later
    except cpu.CpuError as error:
        print(f"lguestfs: unicorn {cpu.UNICORN_VERSION} cannot be used: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        require_request_callers()
        mountpoint = check_mountpoint(args.mountpoint)
    except (MountError, RuntimeError) as error:
        print(f"lguestfs: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if os.getuid() != 0:
        log.warning("not root: INITIALIZE cannot map launchers' memory (needs CAP_SYS_ADMIN)")
    raise_descriptor_limit()
    log_unicorn_build(calibration.binding.patches)
    # The source and subtype the mount table shows: how the launcher and others find us.
    options = {f"fsname={node.FSNAME}", f"subtype={node.FSNAME}", "default_permissions"}
    if args.allow_other:
        options.add("allow_other")
    fs = LguestFS()
    try:
        pyfuse3.init(fs, mountpoint, options)
    except RuntimeError as error:
        print(f"lguestfs: cannot mount on {mountpoint}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        trio.run(serve, fs, mountpoint)
    finally:
        pyfuse3.close(unmount=True)
        if mountpoint in fuse_mounts():  # libfuse does not unmount an aborted connection
            lazy_unmount(mountpoint)
    log.info("unmounted %s", mountpoint)
    return 0
