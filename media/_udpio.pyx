# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled RTP receive: `media.udpio`'s receive set, in C, and its per-packet state.

What `media.udpio.PyRtpSockets` does, without the interpreter between syscalls: one
epoll set over every channel's RTP socket, drained whole when the loop says it is
readable, each datagram handed to its channel's callback with the source address (one
tuple per source, reused while it does not change). A socket added with an `RtpStream`
has its channel's common packet taken in C instead (see the second half of this file).
`tests/media/test_udpio.py`, `test_jitter.py` and `test_rtcp.py` hold both
implementations to the same behaviour.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport EAGAIN, EINTR, errno
from libc.string cimport memcmp, memcpy
from posix.unistd cimport close

import logging
import socket

log = logging.getLogger("media.udpio")

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    struct sockaddr_storage:
        pass
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags, sockaddr *addr, socklen_t *len)
    int MSG_DONTWAIT
    int MSG_TRUNC

cdef extern from "<errno.h>" nogil:
    int EWOULDBLOCK

cdef extern from "<sys/epoll.h>" nogil:
    union epoll_data:
        int fd
    struct epoll_event:
        unsigned int events
        epoll_data data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    int EPOLL_CTL_ADD
    int EPOLL_CTL_DEL
    int EPOLLIN
    int EPOLL_CLOEXEC

cdef enum:
    MAX_EVENTS = 1024
    BUF_SIZE = 65536  # the largest UDP payload: nothing is ever cut short
    ADDR_SIZE = 128  # sizeof(struct sockaddr_storage)

cdef char _buf[BUF_SIZE]


cdef class _Entry:
    cdef int fd
    cdef object callback
    cdef object addr  # the source address tuple handed to the callback
    cdef object stream  # an RtpStream, or None: every datagram goes to the callback
    cdef char sa[ADDR_SIZE]
    cdef socklen_t sa_len
    cdef bint active


cdef class RtpSockets:
    """See `media.udpio.RtpSockets`."""

    cdef int _epfd
    cdef dict _entries
    cdef public long long datagrams
    cdef public long long errors
    cdef public long long truncated

    def __cinit__(self):
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise OSError(errno, "epoll_create1 failed")
        self._entries = {}
        self.datagrams = 0
        self.errors = 0
        self.truncated = 0

    def __dealloc__(self):
        if self._epfd >= 0:
            close(self._epfd)

    def fileno(self):
        return self._epfd

    def __len__(self):
        return len(self._entries)

    def add(self, sock, callback, stream=None):
        cdef int fd = sock.fileno()
        cdef epoll_event ev
        if fd in self._entries:
            raise ValueError(f"socket {fd} is already in the receive set")
        entry = _Entry()
        entry.fd = fd
        entry.callback = callback
        if stream is not None and not isinstance(stream, RtpStream):
            raise TypeError(f"not an RtpStream: {stream!r}")
        entry.stream = stream
        entry.addr = None
        entry.sa_len = 0
        entry.active = True
        ev.events = EPOLLIN
        ev.data.fd = fd
        if epoll_ctl(self._epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
            raise OSError(errno, f"epoll_ctl(ADD, {fd}) failed")
        self._entries[fd] = entry

    def remove(self, sock):
        cdef int fd = sock.fileno()
        cdef epoll_event ev
        cdef _Entry entry = self._entries.pop(fd, None)
        if entry is None:
            return
        entry.active = False
        # A socket closed already has left the set by itself.
        epoll_ctl(self._epfd, EPOLL_CTL_DEL, fd, &ev)

    def drain(self, int max_per_socket=32):
        cdef epoll_event events[MAX_EVENTS]
        cdef char sa[ADDR_SIZE]
        cdef socklen_t sa_len
        cdef ssize_t got
        cdef int n, k, j, fd
        cdef long long total = 0
        cdef _Entry entry
        cdef RtpStream stream
        n = epoll_wait(self._epfd, events, MAX_EVENTS, 0)
        if n < 0:
            if errno == EINTR:
                return 0
            raise OSError(errno, "epoll_wait failed")
        for k in range(n):
            fd = events[k].data.fd
            entry = self._entries.get(fd)
            if entry is None:
                continue
            j = 0
            while j < max_per_socket and entry.active:
                sa_len = ADDR_SIZE
                got = recvfrom(fd, _buf, BUF_SIZE, MSG_DONTWAIT | MSG_TRUNC, <sockaddr *>sa,
                               &sa_len)
                if got < 0:
                    if errno == EINTR:
                        continue
                    if errno != EAGAIN and errno != EWOULDBLOCK:
                        self.errors += 1
                        log.debug("RTP receive error on socket %d: errno %d", fd, errno)
                    break
                j += 1
                if got > BUF_SIZE:
                    self.truncated += 1
                    continue
                if entry.stream is not None:
                    stream = <RtpStream>entry.stream
                    if stream.enabled and stream.take(<const unsigned char *>_buf, got):
                        total += 1
                        continue
                if sa_len != entry.sa_len or memcmp(sa, entry.sa, sa_len) != 0:
                    entry.addr = _address(sa, sa_len)
                    memcpy(entry.sa, sa, sa_len)
                    entry.sa_len = sa_len
                data = PyBytes_FromStringAndSize(_buf, got)
                total += 1
                try:
                    entry.callback(data, entry.addr)
                except Exception:
                    # One channel's bug must not stop the others' packets.
                    log.exception("RTP receive callback failed on socket %d", fd)
        self.datagrams += total
        return total

    def close(self):
        self._entries.clear()
        if self._epfd >= 0:
            close(self._epfd)
            self._epfd = -1


cdef object _address(char *sa, socklen_t sa_len):
    # The same tuples Python's socket.recvfrom gives: (host, port) for IPv4,
    # (host, port, flowinfo, scope_id) for IPv6.
    cdef unsigned short family = (<unsigned short *>sa)[0]
    raw = sa[:sa_len]
    if family == socket.AF_INET:
        port = (<unsigned char>sa[2]) << 8 | <unsigned char>sa[3]
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    if family == socket.AF_INET6:
        port = (<unsigned char>sa[2]) << 8 | <unsigned char>sa[3]
        flow = int.from_bytes(raw[4:8], "big")
        scope = int.from_bytes(raw[24:28], "little")
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope)
    return (None, 0)


# --- the receive path's per-packet state, in C -----------------------------------------
#
# `JitterBuffer` and `ReceptionStats` are `media.jitter.JitterBuffer` and
# `media.rtcp.ReceptionStats` with the same behaviour (the tests hold each pair to the
# same outputs on the same packet sequences); `RtpStream` is what the drain needs to take
# a channel's common packet without calling back into Python: plain RTP of its media
# payload type, one frame long, from the stream it already follows. Everything else (a
# new SSRC, RFC 4733 events, RTCP-mux, other payload types or lengths, latching) still
# goes to the channel's callback.

from cpython.dict cimport PyDict_Next, PyDict_SetItem
from cpython.object cimport PyObject
from libc.stdlib cimport malloc, free

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec *tp)
    int CLOCK_MONOTONIC

from media.jitter import JitterState, JitterStats

cdef enum:
    _IDLE = 0
    _BUFFERING = 1
    _PLAYING = 2
    _MAX_DROPOUT = 3000
    _MAX_MISORDER = 100

_STATES = (JitterState.IDLE, JitterState.BUFFERING, JitterState.PLAYING)


cdef inline double _now() noexcept:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return t.tv_sec + t.tv_nsec * 1e-9


cdef class JitterBuffer:
    """`media.jitter.JitterBuffer` in C (same arguments, behaviour and counters).

    The frames are at most `capacity` + 1 (ext, payload) pairs in two small arrays, a
    pair in slot ext % (capacity + 1) when that is free (so an in-order stream is found
    at the first look), else in any free one; a lookup that misses scans them all.
    """

    cdef public int depth
    cdef public int capacity
    cdef public long long max_jump
    cdef public long long max_jump_samples
    cdef long long _pushed, _played, _lost, _late, _duplicates, _overflow, _resyncs
    cdef int _state
    cdef bint _has_ssrc
    cdef long long _ssrc
    cdef long long _max_ext
    cdef long long _last_ts
    cdef long long _next
    cdef int _wait
    cdef bint _has_played
    cdef int _slots
    cdef int _count
    cdef long long *_keys  # -1: a free slot (extended numbers are never negative)
    cdef list _vals

    def __cinit__(self, *, int depth_ms=60, int ptime_ms=20, int capacity_ms=200,
                  long long max_jump=100, long long max_jump_samples=8000 * 10):
        if ptime_ms <= 0 or depth_ms < 0:
            raise ValueError("jitter buffer depth and ptime must be positive")
        self.depth = max(1, round(depth_ms / ptime_ms))
        self.capacity = max(self.depth + 1, round(capacity_ms / ptime_ms))
        self.max_jump = max_jump
        self.max_jump_samples = max_jump_samples
        self._slots = self.capacity + 1  # a push may hold one more until the trim
        self._keys = <long long *>malloc(self._slots * sizeof(long long))
        if self._keys == NULL:
            raise MemoryError()
        self._vals = [None] * self._slots
        self._clear()
        self._ssrc = 0
        self._has_ssrc = False
        self._max_ext = -1
        self._last_ts = 0
        self._next = 0
        self._wait = 0
        self._has_played = False
        self._state = _IDLE

    def __dealloc__(self):
        free(self._keys)

    def __len__(self):
        return self._count

    @property
    def stats(self):
        """A snapshot of the counters, as a `media.jitter.JitterStats`."""
        return JitterStats(self._pushed, self._played, self._lost, self._late,
                           self._duplicates, self._overflow, self._resyncs)

    @property
    def state(self):
        return _STATES[self._state]

    @property
    def idle(self):
        return self._state == _IDLE and self._count == 0

    def reset(self):
        self._clear()
        self._has_ssrc = False
        self._max_ext = -1
        self._has_played = False
        self._state = _IDLE

    # the frames: a set of (ext, payload)

    cdef void _clear(self):
        cdef int i
        for i in range(self._slots):
            self._keys[i] = -1
            self._vals[i] = None
        self._count = 0

    cdef inline int _find(self, long long ext):
        # Where `ext` is (-1: a free slot), or -1. A key goes to slot ext % slots when
        # that is free, so in-order streams are found at the first look.
        cdef int i = <int>(ext % self._slots) if ext >= 0 else 0
        if self._keys[i] == ext:
            return i
        for i in range(self._slots):
            if self._keys[i] == ext:
                return i
        return -1

    cdef void _put(self, long long ext, object payload):
        cdef int i = self._find(ext)
        if i < 0:
            i = <int>(ext % self._slots)
            if self._keys[i] != -1:
                i = self._find(-1)
            self._count += 1
        self._keys[i] = ext
        self._vals[i] = payload

    cdef object _take(self, long long ext):
        cdef int i
        if self._count == 0:
            return None
        i = self._find(ext)
        if i < 0:
            return None
        value = self._vals[i]
        self._keys[i] = -1
        self._vals[i] = None
        self._count -= 1
        return value

    cdef long long _oldest(self):
        cdef long long best = -1
        cdef int i
        for i in range(self._slots):
            if self._keys[i] >= 0 and (best < 0 or self._keys[i] < best):
                best = self._keys[i]
        return best

    # push and pop: media.jitter.JitterBuffer's, line for line

    cpdef bint push(self, long long seq, long long ts, long long ssrc, object payload):
        """Offer a packet; returns True if it was buffered, False if dropped."""
        cdef long long max_ext = self._max_ext, delta, ext
        if self._has_ssrc and ssrc == self._ssrc and max_ext >= 0:
            delta = (seq - max_ext) & 0xFFFF
            if 0 < delta <= self.max_jump and ((ts - self._last_ts) & 0xFFFFFFFF) <= self.max_jump_samples:
                self._pushed += 1
                ext = max_ext + delta
                self._max_ext = ext
                self._last_ts = ts
                self._put(ext, payload)
                if self._state == _IDLE:
                    self._begin_buffering()
                if self._count > self.capacity:
                    self._trim()
                return True
        return self._push_slow(seq, ts, ssrc, payload)

    cpdef object pop(self):
        """Take the frame due this tick; None means conceal with silence."""
        if self._state == _PLAYING:
            frame = self._take(self._next)
            if frame is not None:
                self._next += 1
                self._played += 1
                return frame
        return self._pop_slow()

    cdef bint _push_slow(self, long long seq, long long ts, long long ssrc, object payload):
        cdef long long ext, jump, ts_jump
        self._pushed += 1
        if self._max_ext < 0 or not self._has_ssrc or ssrc != self._ssrc:
            return self._start(seq, ts, ssrc, payload)
        ext = self._extend(seq)
        jump = ext - self._max_ext
        ts_jump = ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if abs(jump) > self.max_jump or abs(ts_jump) > self.max_jump_samples:
            return self._start(seq, ts, ssrc, payload)
        if self._find(ext) >= 0:
            self._duplicates += 1
            return False
        if self._has_played and ext < self._next:
            self._late += 1
            return False
        if jump > 0:
            self._max_ext = ext
            self._last_ts = ts
        self._put(ext, payload)
        if self._state == _IDLE:
            self._begin_buffering()
        self._trim()
        return True

    cdef object _pop_slow(self):
        if self._state == _BUFFERING:
            self._wait += 1
            if self._wait < self.depth:
                return None
            self._state = _PLAYING
            self._has_played = True
            self._next = self._oldest()
        elif self._state == _IDLE:
            return None
        frame = self._take(self._next)
        if frame is not None:
            self._next += 1
            self._played += 1
            return frame
        if self._count == 0:
            self._state = _IDLE
            return None
        self._next += 1
        self._lost += 1
        return None

    cdef bint _start(self, long long seq, long long ts, long long ssrc, object payload):
        if self._max_ext >= 0:
            self._resyncs += 1
        self._clear()
        self._has_played = False
        self._ssrc = ssrc
        self._has_ssrc = True
        self._max_ext = 0x10000 + seq
        self._last_ts = ts
        self._put(self._max_ext, payload)
        self._next = self._max_ext
        self._begin_buffering()
        return True

    cdef inline void _begin_buffering(self):
        self._state = _BUFFERING
        self._wait = 0

    cdef inline long long _extend(self, long long seq):
        cdef long long delta = (seq - self._max_ext) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._max_ext + delta

    cdef void _trim(self):
        cdef long long oldest
        while self._count > self.capacity:
            oldest = self._oldest()
            self._take(oldest)
            self._overflow += 1
            if oldest + 1 > self._next:
                self._next = oldest + 1


cdef class ReceptionStats:
    """`media.rtcp.ReceptionStats` in C (same fields, methods and report blocks)."""

    cdef public long long ssrc
    cdef public int rate
    cdef public long long base_seq
    cdef public long long max_seq
    cdef public long long cycles
    cdef public long long received
    cdef public long long expected_prior
    cdef public long long received_prior
    cdef public double jitter
    cdef long long _transit
    cdef bint _has_transit
    cdef public long long last_sr
    cdef public object last_sr_at

    def __init__(self, ssrc, rate=8000, base_seq=0, max_seq=0):
        self.ssrc = ssrc
        self.rate = rate
        self.base_seq = base_seq
        self.max_seq = max_seq
        self.last_sr_at = None

    @classmethod
    def start(cls, ssrc, seq, rate=8000):
        return cls(ssrc, rate, seq, seq)

    @property
    def transit(self):
        return self._transit if self._has_transit else None

    @transit.setter
    def transit(self, value):
        self._has_transit = value is not None
        self._transit = 0 if value is None else value

    cpdef void update(self, long long seq, long long ts, double arrival):
        """Count one packet with sequence number `seq` and timestamp `ts`, arriving at
        `arrival` seconds on our clock."""
        cdef long long transit, d
        if 0 < seq - self.max_seq < _MAX_DROPOUT:
            self.max_seq = seq
        else:
            self._sequence(seq)
        self.received += 1
        transit = <long long>(arrival * self.rate) - ts
        if self._has_transit:
            d = transit - self._transit
            if d < 0:
                d = -d
            if d >= 0x80000000:
                d = abs(d - 0x100000000)
            self.jitter += (d - self.jitter) * 0.0625
        self._transit = transit
        self._has_transit = True

    cpdef void _sequence(self, long long seq):
        cdef long long delta = (seq - self.max_seq) & 0xFFFF
        if 0 < delta < _MAX_DROPOUT:
            self.cycles += 0x10000
            self.max_seq = seq
        elif _MAX_DROPOUT <= delta <= 0x10000 - _MAX_MISORDER:
            self.base_seq = self.max_seq = seq
            self.cycles = self.received = self.expected_prior = self.received_prior = 0
            self._has_transit = False

    def sender_report(self, ntp_seconds, ntp_fraction, now):
        """Note an SR from this source (for LSR and DLSR in our next report block)."""
        self.last_sr = ((ntp_seconds & 0xFFFF) << 16) | (ntp_fraction >> 16)
        self.last_sr_at = now

    @property
    def extended_max(self):
        return self.cycles + self.max_seq

    @property
    def expected(self):
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self):
        """Cumulative packets lost (negative when duplicates outnumber losses)."""
        return self.expected - self.received

    def report_block(self, now):
        """A 24-byte report block (RFC 3550 §6.4.1) on this source; starts a new loss
        interval."""
        from media.rtcp import report_block
        return report_block(self, now)


cdef class RtpStream:
    """What the drain needs to take a channel's common packet itself (see above): while
    `enabled`, a datagram that is plain RTP of payload type `pt`, `frame_bytes` long
    after its header, and of `rx`'s SSRC, is counted (`packets`, `octets`), fed to `rx`
    and pushed into `jb`, and `active[key] = jb` marks the buffer as needing pops."""

    cdef public bint enabled
    cdef public int pt
    cdef public int frame_bytes
    cdef public long long packets
    cdef public long long octets
    cdef JitterBuffer _jb
    cdef ReceptionStats _rx
    cdef dict _active
    cdef object _key

    def __init__(self, JitterBuffer jb not None, int frame_bytes, dict active not None, key):
        self._jb = jb
        self.frame_bytes = frame_bytes
        self._active = active
        self._key = key
        self.enabled = False
        self._rx = None

    def follow(self, bint enabled, int pt, ReceptionStats rx):
        """Take the common packet while `enabled` (and `rx` is not None)."""
        self.enabled = enabled and rx is not None
        self.pt = pt
        self._rx = rx

    cdef bint take(self, const unsigned char *buf, ssize_t got):
        cdef long long seq, ts, ssrc
        if got != 12 + self.frame_bytes or buf[0] != 0x80 or (buf[1] & 0x7F) != self.pt:
            return False
        ssrc = (<long long>buf[8] << 24) | (buf[9] << 16) | (buf[10] << 8) | buf[11]
        if ssrc != self._rx.ssrc:
            return False
        seq = (buf[2] << 8) | buf[3]
        ts = (<long long>buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7]
        self.packets += 1
        self.octets += got
        self._rx.update(seq, ts, _now())
        self._jb.push(seq, ts, ssrc, PyBytes_FromStringAndSize(<const char *>buf + 12,
                                                               self.frame_bytes))
        PyDict_SetItem(self._active, self._key, self._jb)
        return True


def gather(dict rx, list frames, bint detecting):
    """`media.udpio.py_gather` in C: pop one frame from each buffer in `rx`."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef list idle = None
    cdef list rows = None
    cdef Py_ssize_t slot
    cdef object frame
    while PyDict_Next(rx, &pos, &key, &value):
        channel = <object>key
        jb = <object>value
        if type(jb) is JitterBuffer:
            frame = (<JitterBuffer>jb).pop()
        else:
            frame = jb.pop()
        slot = channel._slot
        if frame is None:
            frame = channel._silence_in
            if jb.idle:
                if idle is None:
                    idle = []
                idle.append(channel)
        elif detecting and channel._detect_inband:
            if rows is None:
                rows = []
            rows.append(slot)
        frames[slot] = frame
    return idle, rows
