"""Free loopback ports for peers and the switch: `control.testkit.ports`, the one
implementation, which the pytest plugin shipped with the package uses too. Importing it
from here keeps one set of ports handed out per process, shared by the harness and the
plugin's switch and phone."""

from control.testkit.ports import (
    HOST,
    RECENT,
    free_port_block,
    free_port_range,
    free_rtp_port,
    free_tcp_port,
    free_udp_port,
    port_bound,
    port_is_free,
    worker_slice,
)

__all__ = [
    "HOST",
    "RECENT",
    "free_port_block",
    "free_port_range",
    "free_rtp_port",
    "free_tcp_port",
    "free_udp_port",
    "port_bound",
    "port_is_free",
    "worker_slice",
]
