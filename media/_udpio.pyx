# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled RTP receive: `media.udpio`'s receive set, in C.

What `media.udpio.PyRtpSockets` does, without the interpreter between syscalls: one
epoll set over every channel's RTP socket, drained whole when the loop says it is
readable, each datagram handed to its channel's callback with the source address (one
tuple per source, reused while it does not change). `tests/media/test_udpio.py` holds
both implementations to the same behaviour.
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

    def add(self, sock, callback):
        cdef int fd = sock.fileno()
        cdef epoll_event ev
        if fd in self._entries:
            raise ValueError(f"socket {fd} is already in the receive set")
        entry = _Entry()
        entry.fd = fd
        entry.callback = callback
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
