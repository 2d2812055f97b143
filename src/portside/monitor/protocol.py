"""Wire format of the attach socket, shared by the monitor and its client.

The attach socket is SOCK_SEQPACKET, so every packet is one message: a type
byte and a payload. The control socket is SOCK_STREAM with one JSON request
line and one JSON reply line per connection.
"""

from __future__ import annotations

# monitor -> client
STDOUT = 1
STDERR = 2
EXIT = 3  # payload: the exit file's JSON; the monitor closes the connection after it
DETACHED = 4  # the client typed the detach keys; the connection closes after it
# client -> monitor
STDIN = 0
RESIZE = 5  # payload: b"ROWS COLS"
CLOSE_STDIN = 6  # the client's input ended: close the container's stdin

MAX_PACKET = 32768
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q, as docker and podman
