"""A stand-in guest for unit tests of the protocol's pure logic (``guest.GuestContract``).

Its requests do nothing; a test subclasses it and gives ``run`` (and what else it needs) the
behaviour it is about.
"""

from collections.abc import Callable

from lguestfs.guest import GuestStatus, RunExit


class StandInGuest:
    """Everything ``protocol`` may call, doing nothing; ``death`` stays None unless set."""

    death: str | None = None

    def run(self, on_exit: Callable[[RunExit, int], None]) -> None:
        raise NotImplementedError("a stand-in's test says how it runs")

    def set_break(self, on: bool) -> None:
        pass

    def raise_irq(self, irq: int) -> None:
        pass

    def interrupt(self) -> None:
        pass

    def check_memory(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def status(self) -> GuestStatus:
        raise NotImplementedError("not shown in protocol tests")
