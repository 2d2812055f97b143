"""The per-network DNS responder: A records for the container names on one network.

Run as `python -m portside.network.dnsserver`, one process per network, bound
only to the network's gateway address (as podman's aardvark-dns), so it is
reachable from that network's containers and nothing else. It answers from the
registry file dns.py writes (reread when it changes) and forwards other names
to the host's upstream servers. Stdlib only; no threads before the bind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import threading
from typing import Any

from portside.network.dns import SEARCH_DOMAIN

TTL = 5  # short: containers come and go
QTYPE_A = 1
QTYPE_AAAA = 28


class Names:
    """The registry file, reread when its mtime or size changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._names: dict[str, list[str]] = {}

    def lookup(self, name: str) -> list[str] | None:
        """Addresses of `name`; None when the name is not ours."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._stamp = stamp
            self._names = {}
            try:
                with open(self.path) as f:
                    doc: Any = json.load(f)
            except (OSError, ValueError):
                doc = {}
            for entry in (doc.get("containers") or {}).values():
                for n in entry.get("names", []):
                    self._names.setdefault(n.lower(), []).extend(entry.get("ips", []))
        n = name.lower().rstrip(".")
        if n.endswith("." + SEARCH_DOMAIN):
            n = n[: -len(SEARCH_DOMAIN) - 1]
        return self._names.get(n)


def parse_query(data: bytes) -> tuple[int, int, str, int, int, bytes] | None:
    """(id, flags, qname, qtype, qclass, raw question) of a one-question query."""
    if len(data) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", data[:6])
    if qd != 1 or flags & 0x8000:
        return None
    i, labels = 12, []
    while True:
        if i >= len(data):
            return None
        ln = data[i]
        if ln == 0:
            i += 1
            break
        if ln & 0xC0 or i + 1 + ln > len(data):
            return None
        labels.append(data[i + 1 : i + 1 + ln].decode("ascii", "replace"))
        i += 1 + ln
    if i + 4 > len(data):
        return None
    qtype, qclass = struct.unpack("!HH", data[i : i + 4])
    return qid, flags, ".".join(labels), qtype, qclass, data[12 : i + 4]


def build_answer(qid: int, flags: int, question: bytes, qtype: int, ips: list[str]) -> bytes:
    """A NOERROR answer: A records for the IPv4 `ips`, AAAA for the IPv6 ones (none for
    other types: the name exists, so resolvers must not fall through to NXDOMAIN)."""
    answers = []
    family = {QTYPE_A: socket.AF_INET, QTYPE_AAAA: socket.AF_INET6}.get(qtype)
    for ip in ips if family else []:
        try:
            packed = socket.inet_pton(family, ip)  # type: ignore[arg-type]
        except OSError:
            continue  # the other family
        answers.append(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, TTL, len(packed)) + packed)
    rd = flags & 0x0100
    header = struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, len(answers), 0, 0)
    return header + question + b"".join(answers)


def build_error(qid: int, flags: int, question: bytes, rcode: int) -> bytes:
    rd = flags & 0x0100
    return struct.pack("!HHHHHH", qid, 0x8080 | rd | rcode, 1, 0, 0, 0) + question


def forward(data: bytes, upstreams: list[str], timeout: float = 2.0) -> bytes | None:
    for server in upstreams:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(data, (server, 53))
                reply, _ = s.recvfrom(4096)
                return reply
            except OSError:
                continue
    return None


def serve(sock: socket.socket, names: Names, upstreams: list[str]) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(4096)
            _answer(sock, names, upstreams, data, peer)
        except OSError:
            continue  # one bad exchange (a peer gone, ICMP errors) must not stop the network


def _answer(
    sock: socket.socket, names: Names, upstreams: list[str], data: bytes, peer: Any
) -> None:
    q = parse_query(data)
    if q is None:
        return
    qid, flags, qname, qtype, _qclass, question = q
    ips = names.lookup(qname)
    if ips is not None:
        sock.sendto(build_answer(qid, flags, question, qtype, ips), peer)
    elif upstreams:
        threading.Thread(target=_relay, args=(sock, data, peer, upstreams, q), daemon=True).start()
    else:
        sock.sendto(build_error(qid, flags, question, 3), peer)  # NXDOMAIN


def _relay(
    sock: socket.socket,
    data: bytes,
    peer: Any,
    upstreams: list[str],
    q: tuple[int, int, str, int, int, bytes],
) -> None:
    reply = forward(data, upstreams)
    with contextlib.suppress(OSError):
        sock.sendto(reply or build_error(q[0], q[1], q[5], 2), peer)  # SERVFAIL


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="portside.network.dnsserver")
    ap.add_argument("--registry", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--upstream", action="append", default=[])
    ap.add_argument("--netns")
    ap.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    if a.netns:
        from portside.linux import libc

        fd = os.open(a.netns, os.O_RDONLY | os.O_CLOEXEC)
        libc.setns(fd, libc.CLONE_NEWNET)
        os.close(fd)
    family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((a.bind, a.port))
    except OSError as err:
        print(f"cannot bind {a.bind}:{a.port}: {err.strerror}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.ready_fd is not None:
        os.write(a.ready_fd, b"ok\n")
        os.close(a.ready_fd)
    serve(sock, Names(a.registry), a.upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
