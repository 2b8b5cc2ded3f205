"""Group commit: concurrent callers' items written in one transaction, each caller answered after it.

The rule: `GroupCommitter.submit(item)` returns only once the transaction holding `item` has
committed (or raises what refused it), so an acknowledgement still means "durable"; but while one
group is being written, the items that arrive queue up and go together in the next group, so one
fsync serves many callers. There is no writer thread: the first caller that finds no group being
written becomes the leader, writes groups until the queue is empty, and hands each caller its
answer (leader/follower, as databases do it). At most `max_group` items go in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class _Slot(Generic[Item, Answer]):
    __slots__ = ("item", "answer", "error", "done")

    def __init__(self, item: Item):
        self.item = item
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommitter(Generic[Item, Answer]):
    """Writes submitted items in groups with `write_group(items) -> answers` (one answer per item,
    in order, after the group's commit); see the module docstring."""

    def __init__(self, write_group: Callable[[Sequence[Item]], Sequence[Answer]], max_group: int = 512):
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self.write_group = write_group
        self.max_group = max_group
        self._condition = threading.Condition()
        self._queue: list[_Slot[Item, Answer]] = []
        self._writing = False
        self.groups = 0  # groups written (for metrics and tests)
        self.items = 0

    def submit(self, item: Item) -> Answer:
        """Write `item` (with whatever else is waiting) and return its answer once committed; raises
        the write's exception when its group failed (nothing of that group was committed)."""
        slot: _Slot[Item, Answer] = _Slot(item)
        with self._condition:
            self._queue.append(slot)
            while not slot.done and self._writing:
                self._condition.wait()
            if slot.done:
                return self._result(slot)
            self._writing = True  # this caller leads: its item is still queued
        try:
            while True:
                with self._condition:
                    group, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
                    if not group:
                        self._writing = False
                        self._condition.notify_all()
                        break
                self._write(group)
                with self._condition:
                    self._condition.notify_all()
        except BaseException:
            with self._condition:
                self._writing = False
                self._condition.notify_all()
            raise
        return self._result(slot)

    def _write(self, group: list[_Slot[Item, Answer]]) -> None:
        try:
            answers = list(self.write_group([slot.item for slot in group]))
            if len(answers) != len(group):
                raise RuntimeError(f"write_group answered {len(answers)} of {len(group)} items")
        except Exception as error:  # the whole group failed: every caller of it gets the error
            for slot in group:
                slot.error, slot.done = error, True
            return
        self.groups += 1
        self.items += len(group)
        for slot, answer in zip(group, answers):
            slot.answer, slot.done = answer, True

    @staticmethod
    def _result(slot: _Slot[Item, Answer]) -> Answer:
        if slot.error is not None:
            raise slot.error
        return slot.answer  # type: ignore[return-value]
