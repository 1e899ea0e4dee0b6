"""Cutting an inbound RTP stream of any packet time into the engine's fixed frames.

The engine reads one 20 ms frame per channel per tick, and the jitter buffer is keyed by
frame. A peer that sends 10, 30, 40 or 60 ms packets (or changes its packet size) goes
through a `Repacketiser` first: each packet's samples are placed by their RTP timestamp
into frames on a grid that starts at the stream's first timestamp, and each frame is
handed on, with a sequence number and timestamp of its own (frame index), once it is
full. So the audio comes out sample-exact and at the right time whatever the sender's
packet size, and the jitter buffer's loss, reordering and restart handling works on
frames as it always does.

A frame that a lost packet left part-empty is handed on, its gap filled with the codec's
silence, once the stream is `LAG` frames past it; bytes that arrive for a frame already
handed on are dropped (the jitter buffer would count them late anyway). A new SSRC or a
timestamp jump of more than `max_jump_samples` starts a new grid.

G.711 only: one byte is one sample, and the RTP clock is the sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass

LAG = 3
"""Frames the stream must be past a part-filled frame before it goes out padded: as long
as the jitter buffer's default playout delay (60 ms), so bytes that come late but still
in time to be played are placed, not lost."""


@dataclass(slots=True)
class RepacketiserStats:
    packets: int = 0
    frames: int = 0
    padded: int = 0  # frames handed on part-filled (a packet around them was lost)
    dropped_bytes: int = 0  # bytes for frames already handed on (late or duplicate)
    restarts: int = 0


class Repacketiser:
    """Fixed `frame`-byte frames from packets of any size; see the module docstring.

    In-order packets (each starting where the last one ended) take a fast path: they are
    appended to a *run*, a buffer that starts on a frame boundary, and whole frames are
    cut off its front. Anything else (loss, reordering, duplicates) goes through the
    general path, which places bytes frame by frame; the run's part-filled frame becomes
    a pending frame then, and a new run starts at the next packet that begins on a frame
    boundary it has not seen."""

    def __init__(
        self, frame: int, silence: bytes, *, max_jump_samples: int = 8000 * 10
    ) -> None:
        if frame <= 0 or len(silence) != frame:
            raise ValueError(f"need a positive frame size and {frame} bytes of silence")
        self.frame = frame
        self.stats = RepacketiserStats()
        self._silence = silence
        self._max_jump = max_jump_samples
        self._ssrc: int | None = None
        self._base = 0  # RTP timestamp of frame 0 of the grid
        # index -> (frame, mask): the mask has a 1 for each byte set, so a duplicate or an
        # overlapping packet never makes a frame look fuller than it is
        self._pending: dict[int, tuple[bytearray, bytearray]] = {}
        self._floor = -LAG  # frames below this index have been handed on or given up
        self._sent: set[int] = set()  # frames at or above the floor already handed on
        self._newest = 0  # highest frame index any packet has reached
        self._run = bytearray()  # samples from frame `_run_start` on (less than a frame)
        self._run_start = 0
        self._run_end: int | None = None  # sample offset where the run ends; None: no run

    def reset(self) -> None:
        """Forget the stream: the next packet starts a new grid."""
        self._ssrc = None
        self._pending.clear()
        self._sent.clear()
        self._run.clear()
        self._run_end = None

    def push(self, ts: int, ssrc: int, payload: bytes) -> list[tuple[int, int, bytes]]:
        """Place one packet; return (seq, ts, frame) of every frame it completes (or that
        is given up on, padded), oldest first. Sequence numbers count frames mod 2^16."""
        self.stats.packets += 1
        frame = self.frame
        offset = _signed(ts - self._base)
        if ssrc != self._ssrc or abs(offset - self._newest * frame) > self._max_jump:
            self._restart(ts, ssrc)
            offset = 0
        size = len(payload)
        if not size:
            return []
        if offset != self._run_end:
            first, within = divmod(offset, frame)
            done = self._end_run()
            if within or not self._fresh(first):
                done += self._place(offset, payload)
            else:  # a new run, on a frame boundary nothing has touched yet
                self._run_start, self._run_end = first, offset
                done += self._extend_run(payload)
        else:
            done = self._extend_run(payload)
        self._newest = max(self._newest, (offset + size - 1) // frame)
        return self._give_up(self._newest - LAG) + done  # older frames first

    def _extend_run(self, payload: bytes) -> list[tuple[int, int, bytes]]:
        frame, run = self.frame, self._run
        run += payload
        assert self._run_end is not None
        self._run_end += len(payload)
        whole = len(run) // frame
        done = []
        for k in range(whole):
            index = self._run_start + k
            self._pending.pop(index, None)  # an early packet's part: the run has it all
            if index in self._sent or index < self._floor:
                self.stats.dropped_bytes += frame
                continue
            self._sent.add(index)
            done.append(self._frame(index, run[k * frame : (k + 1) * frame]))
        if whole:
            del run[: whole * frame]
            self._run_start += whole
        if run and self._run_start in self._pending:  # an early packet has the frame's rest
            done += self._end_run()
        return done

    def _end_run(self) -> list[tuple[int, int, bytes]]:
        """Turn the run's part-filled frame into a pending one (the general path's);
        return it if that completes it."""
        if self._run_end is None:
            return []
        done = []
        if self._run:
            full = self._write(self._run_start, 0, self._run)
            if full is not None:
                done.append(full)
            self._run.clear()
        self._run_end = None
        return done

    def _write(self, index: int, within: int, data: bytes | bytearray
               ) -> tuple[int, int, bytes] | None:
        """Put `data` into pending frame `index` at `within`; the frame if now full."""
        buf, mask = self._pending.get(index) or (bytearray(self._silence), bytearray(self.frame))
        end = within + len(data)
        buf[within:end] = data
        mask[within:end] = b"\x01" * len(data)
        if 0 in mask:
            self._pending[index] = (buf, mask)
            return None
        self._pending.pop(index, None)
        self._sent.add(index)
        return self._frame(index, buf)

    def _place(self, offset: int, payload: bytes) -> list[tuple[int, int, bytes]]:
        """The general path: each byte range into its frame."""
        frame = self.frame
        done: list[tuple[int, int, bytes]] = []
        pos, size = 0, len(payload)
        while pos < size:
            index, within = divmod(offset + pos, frame)
            take = min(frame - within, size - pos)
            if index < self._floor or index in self._sent:
                self.stats.dropped_bytes += take
            else:
                full = self._write(index, within, payload[pos : pos + take])
                if full is not None:
                    done.append(full)
            pos += take
        return done

    def _fresh(self, index: int) -> bool:
        """Whether frame `index` is untouched: not sent, pending or past."""
        return index >= self._floor and index not in self._sent and index not in self._pending

    def _restart(self, ts: int, ssrc: int) -> None:
        if self._ssrc is not None:
            self.stats.restarts += 1
        self._ssrc, self._base = ssrc, ts
        self._pending.clear()
        self._sent.clear()
        self._run.clear()
        self._run_end = None
        # Packets from just before the first one (reordered) still land, on frames -LAG..-1.
        self._floor, self._newest = -LAG, 0

    def _give_up(self, below: int) -> list[tuple[int, int, bytes]]:
        """Hand on the part-filled frames under index `below`, and raise the floor."""
        if below <= self._floor:
            return []
        out = []
        if self._pending:
            for index in sorted(i for i in self._pending if i < below):
                buf, _ = self._pending.pop(index)
                self.stats.padded += 1
                out.append(self._frame(index, buf))
        sent = self._sent
        if below - self._floor <= len(sent):  # the usual step of a frame or two
            for index in range(self._floor, below):
                sent.discard(index)
        else:
            self._sent = {i for i in sent if i >= below}
        self._floor = below
        return out

    def _frame(self, index: int, buf: bytes | bytearray) -> tuple[int, int, bytes]:
        self.stats.frames += 1
        return index & 0xFFFF, (self._base + index * self.frame) & 0xFFFFFFFF, bytes(buf)


def _signed(delta: int) -> int:
    """A 32-bit RTP timestamp difference as a signed number."""
    return ((delta + 0x80000000) & 0xFFFFFFFF) - 0x80000000
