"""One evaluation over several processes (`accelerate launch`): each process scores a contiguous part of every
image set, and the parts are gathered back in process order, so the result equals one process's."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Protocol, Sequence, TypeVar

T = TypeVar("T")


class Shards(Protocol):
    """How a job's items are split over processes and their results gathered."""

    is_main: bool  # the process that reports and records
    count: int  # how many processes share the job

    def split(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous part of `items`."""
        ...

    def gather(self, part: list[T]) -> list[T]:
        """Every process's `part`, concatenated in process order (the same list in every process)."""
        ...

    def main_first(self) -> ContextManager[None]:
        """A block the main process runs first, then the others (which then read what it cached)."""
        ...


class Single:
    """One process: everything is its part."""

    is_main, count = True, 1

    def split(self, items: Sequence[T]) -> list[T]:
        return list(items)

    def gather(self, part: list[T]) -> list[T]:
        return part

    def main_first(self) -> ContextManager[None]:
        return contextlib.nullcontext()


class Accelerated:
    """The processes of `accelerate launch` (an accelerate PartialState): contiguous parts, gathered with
    accelerate's gather_object."""

    def __init__(self, state: Any):
        self.state, self.is_main, self.count = state, state.is_main_process, state.num_processes

    def split(self, items: Sequence[T]) -> list[T]:
        with self.state.split_between_processes(list(items)) as part:
            return list(part)

    def gather(self, part: list[T]) -> list[T]:
        from accelerate.utils import gather_object

        return list(gather_object(part))

    def main_first(self) -> ContextManager[None]:
        return self.state.main_process_first()
