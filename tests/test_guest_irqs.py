"""Interrupts a launcher raises (LHREQ_IRQ) as the guest sees them, through the real mount.

The test is the launcher here (``launcher.guests.handguest``: memory laid out as lguest-launch
does, INITIALIZE, reads), so it can raise exactly the irqs it wants between two reads: the
``irq_order`` guest (``tests/guests/irq_order.c``) checks that they arrive on vector 0x20 + irq,
lowest first, one per exit, and that an irq raised while it is halted wakes it at the next read
(spec 1.2, 5.1); and the ``irq_missing_gate`` guest that an irq with no IDT entry stays pending
and holds back the ones above it (spec 5.1 step 6).
"""

import pytest

from launcher.guests.handguest import GuestDied, HandGuest
from lguestfs.abi import LHREQ_IRQ
from tests.support.guests import test_guest
from tests.support.mount import Mount

READ_TIMEOUT = 30.0


def early_console_line(guest: HandGuest) -> str:
    """The next NOTIFY, read as the early-console string it points at."""
    address = guest.read(READ_TIMEOUT)
    assert address is not None, "the guest never notified"
    text = guest.prepared.read(address, 256)
    return text.split(b"\0", 1)[0].decode()


def test_launcher_irqs_arrive_lowest_first_and_wake_a_halted_guest(mount: Mount) -> None:
    with HandGuest(mount.path, test_guest("irq_order"), mem_mb=16) as guest:
        assert early_console_line(guest) == "raise 3 1 2\n"
        for irq in (3, 1, 2):
            assert guest.write(LHREQ_IRQ, irq) == 0
        assert early_console_line(guest) == "halting\n"
        # Halted with nothing pending: the read blocks until our timeout ends it.
        assert guest.read(timeout=0.3) is None
        assert guest.write(LHREQ_IRQ, 5) == 0
        line = early_console_line(guest)
        assert line == "PASS irq_order\n", line
        with pytest.raises(GuestDied, match="CRASH: Power down"):
            guest.read(READ_TIMEOUT)


def test_a_pending_irq_without_a_gate_holds_back_the_others(mount: Mount) -> None:
    with HandGuest(mount.path, test_guest("irq_missing_gate"), mem_mb=16) as guest:
        assert early_console_line(guest) == "raise 1 2\n"
        for irq in (1, 2):
            assert guest.write(LHREQ_IRQ, irq) == 0
        line = early_console_line(guest)
        assert line == "PASS irq_missing_gate\n", line
        with pytest.raises(GuestDied, match="CRASH: Power down"):
            guest.read(READ_TIMEOUT)
