"""Container name files, the name registry, and the DNS responder on loopback."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest

from portside.errors import NetworkError
from portside.network import dns, dnsserver


def test_hosts_file_has_localhost_ourselves_peers_and_extra_hosts() -> None:
    text = dns.hosts_content(
        "web",
        ["10.88.0.5"],
        ["web", "www"],
        [("10.88.0.6", ["db", "database"])],
        [("h", "1.2.3.4")],
    )
    lines = text.splitlines()
    assert lines[0].startswith("127.0.0.1\tlocalhost")
    assert lines[1].startswith("::1\tlocalhost")
    assert "10.88.0.5\tweb www" in lines
    assert "10.88.0.6\tdb database" in lines
    assert lines[-1] == "1.2.3.4\th"
    assert "127.0.1.1\tbox" in dns.hosts_content("box")  # --network none still names itself


def test_resolv_conf_drops_loopback_servers_and_puts_the_network_responder_first() -> None:
    host = "# systemd\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\n"
    host += "options edns0\n"
    assert dns.resolv_content(host) == ("search example.org\nnameserver 192.0.2.1\noptions edns0\n")
    assert dns.resolv_content(host, network_dns=["10.89.0.1"]) == (
        "search dns.portside example.org\nnameserver 10.89.0.1\nnameserver 192.0.2.1\n"
        "options edns0\n"
    )
    assert dns.resolv_content(host, dns=["9.9.9.9"], search=[], options=[]) == (
        "nameserver 9.9.9.9\n"
    )
    assert dns.upstream_servers(host) == ["192.0.2.1"]
    assert dns.hostname_content("abc") == "abc\n"


def test_registry_register_lookup_unregister(tmp_path: Path) -> None:
    dns.register(tmp_path, "n", "c1", ["web", "alias", "web"], ["10.0.0.2/24"])
    dns.register(tmp_path, "n", "c2", ["db"], ["10.0.0.3"])
    reg = dns.read_registry(tmp_path, "n")
    assert reg.entries["c1"].names == ["web", "alias"]
    assert reg.lookup("WEB.") == ["10.0.0.2"]
    assert reg.lookup("alias.dns.portside") == ["10.0.0.2"]
    assert reg.lookup("nope") == []
    assert dns.unregister(tmp_path, "n", "c1") is False
    assert dns.unregister(tmp_path, "n", "c2") is True
    assert dns.read_registry(tmp_path, "n").entries == {}


def _query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def test_packet_parse_and_answer() -> None:
    parsed = dnsserver.parse_query(_query("web.dns.portside"))
    assert parsed is not None
    qid, flags, name, qtype, qclass, question = parsed
    assert (qid, name, qtype, qclass) == (0x1234, "web.dns.portside", 1, 1)
    ans = dnsserver.build_answer(qid, flags, question, qtype, ["10.0.0.2", "10.0.0.9"])
    _, aflags, _, an, _, _ = struct.unpack("!HHHHHH", ans[:12])
    assert aflags & 0x8000 and aflags & 0x000F == 0 and an == 2
    assert ans.endswith(socket.inet_aton("10.0.0.9"))
    assert dnsserver.build_answer(qid, flags, question, 28, ["10.0.0.2"])[6:8] == b"\0\0"
    v6 = dnsserver.build_answer(qid, flags, question, 28, ["10.0.0.2", "fd00::2"])
    assert v6[6:8] == b"\0\1" and v6.endswith(socket.inet_pton(socket.AF_INET6, "fd00::2"))
    assert dnsserver.build_answer(qid, flags, question, 1, ["fd00::2"])[6:8] == b"\0\0"
    assert dnsserver.parse_query(b"\0" * 5) is None
    assert dnsserver.parse_query(_query("x")[:-2]) is None


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_responder_answers_registered_names_and_follows_changes(tmp_path: Path) -> None:
    port = _free_udp_port()
    dns.register(tmp_path, "n", "c1", ["web"], ["10.0.0.2"])
    pid = dns.start_responder(tmp_path, "n", "127.0.0.1", upstreams=[], port=port)
    try:
        assert dns.start_responder(tmp_path, "n", "127.0.0.1", upstreams=[], port=port) == pid
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)

            def ask(name: str) -> tuple[int, bytes]:
                s.sendto(_query(name), ("127.0.0.1", port))
                data = s.recv(512)
                return struct.unpack("!H", data[2:4])[0] & 0xF, data

            s.sendto(b"\xff" * 40, ("127.0.0.1", port))  # garbage is ignored, not fatal
            rcode, data = ask("web")
            assert rcode == 0 and data.endswith(socket.inet_aton("10.0.0.2"))
            assert ask("nosuch")[0] == 3  # NXDOMAIN with no upstream
            dns.register(tmp_path, "n", "c2", ["db"], ["10.0.0.3"])
            rcode, data = ask("db.dns.portside")
            assert rcode == 0 and data.endswith(socket.inet_aton("10.0.0.3"))
            dns.unregister(tmp_path, "n", "c1")
            assert ask("web")[0] == 3
    finally:
        assert dns.stop_responder(tmp_path, "n")
    assert dns.responder_pid(tmp_path, "n") is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_responder_that_cannot_bind_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(NetworkError) as err:
        dns.start_responder(tmp_path, "n", "192.0.2.77", upstreams=[], port=_free_udp_port())
    assert "network n: DNS responder on 192.0.2.77" in str(err.value)
    assert "cannot bind" in str(err.value) and "\n" not in str(err.value)
