"""``Closing``: ``with thing:`` ends with ``thing.close()``, for the small things that close.

Guest memory (``layout.PreparedGuest``) and, in the tests and the bench, hand-driven guests and C
clients all own a resource, free it in ``close()`` and are used in ``with`` blocks.  Inheriting
from ``Closing`` gives each the same two methods instead of a copy of them.
"""

from types import TracebackType
from typing import Self


class Closing:
    """A mixin for classes with a ``close()``: ``with`` returns the object and closes it after."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
