"""Watches over a bank of per-stream detector rows, on the engine's tick while any run.

`SilenceMonitor` (media.vad) and `DetectionMonitor` (media.detection) share this shape:
each watch owns one row of a batched kernel, rows stay in the order of the watches, and
the monitor is an engine detect hook only while it has a watch, so an idle switch pays
nothing per tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt


class Bank(Protocol):
    """A batched kernel with one row per stream."""

    def add(self) -> Any: ...

    def remove(self, i: int) -> Any: ...


W = TypeVar("W")


class WatchList(Generic[W]):
    """The watches of one monitor and the kernel rows they own."""

    def __init__(self, engine: Any, bank: Bank) -> None:
        self._engine = engine
        self._bank = bank
        self._watches: list[W] = []
        self._hooked = False

    @property
    def watching(self) -> int:
        return len(self._watches)

    def _add(self, w: W) -> W:
        self._bank.add()
        self._watches.append(w)
        if not self._hooked:
            self._engine.add_detect_hook(self._on_tick)
            self._hooked = True
        return w

    def _drop(self, w: W) -> None:
        if w not in self._watches:
            return
        self._bank.remove(self._watches.index(w))
        self._watches.remove(w)
        if not self._watches and self._hooked:
            self._engine.remove_detect_hook(self._on_tick)
            self._hooked = False

    def _on_tick(self, channels: Sequence[Any], pcm_in: npt.NDArray[np.int16]) -> None:
        raise NotImplementedError
