"""Finding and deleting the iptables rules the CNI plugins left for a container.

portmap and the bridge plugin's ipMasq tag their rules with a comment holding
the container id; the firewall plugin's rules carry only the address. When a
DEL cannot do its job (the bridge plugin needs the namespace to know which
masquerade rules to remove), these rules are found here instead.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import shlex
from collections.abc import Callable, Sequence

from portside.network import netns

_ID_COMMENT = re.compile(r'id: \\?"([^"\\]+)\\?"')
# chains the plugins make once and share: never deleted here
BASE_CHAINS = frozenset(
    {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK", "CNI-FORWARD", "CNI-ADMIN"}
)

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


def _rule_ip(args: list[str]) -> str | None:
    for flag in ("-d", "-s"):
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args):
                return args[i + 1].split("/", 1)[0]
    return None


def sweep(
    host_netns: str | None,
    dead_id: Callable[[str], bool],
    subnets: Sequence[Subnet] = (),
    live_ips: frozenset[str] | set[str] = frozenset(),
) -> tuple[list[str], list[str]]:
    """Delete the rules whose id comment names a container `dead_id` accepts, and (given
    `subnets`) the firewall plugin's CNI-FORWARD rules for addresses in them not in
    `live_ips`; then the per-container chains those rules jumped to.
    Returns (what was removed, errors)."""
    removed: list[str] = []
    errors: list[str] = []
    for table in ("nat", "filter"):
        p = netns.run_in(host_netns, ["iptables-save", "-t", table], capture_output=True, text=True)
        if p.returncode != 0:
            continue
        dead_chains: set[str] = set()
        for line in p.stdout.splitlines():
            if not line.startswith("-A "):
                continue
            args = shlex.split(line)
            chain, rest = args[1], args[2:]
            m = _ID_COMMENT.search(line)
            dead = bool(m and dead_id(m.group(1)))
            if not dead and subnets and chain == "CNI-FORWARD" and "CNI-ADMIN" not in rest:
                with contextlib.suppress(ValueError):
                    addr = ipaddress.ip_address(_rule_ip(rest) or "")
                    dead = any(addr in s for s in subnets) and str(addr) not in live_ips
            if not dead:
                continue
            if "-j" in rest:
                target = rest[rest.index("-j") + 1]
                if target.startswith("CNI-") and target not in BASE_CHAINS:
                    dead_chains.add(target)
            r = netns.run_in(
                host_netns,
                ["iptables", "-t", table, "-D", chain, *rest],
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                removed.append(f"{table}: {line}")
            else:
                errors.append(f"iptables -t {table} -D {chain}: {r.stderr.strip()}")
        for chain in sorted(dead_chains):
            for op in ("-F", "-X"):
                netns.run_in(host_netns, ["iptables", "-t", table, op, chain], capture_output=True)
            removed.append(f"{table}: chain {chain}")
    return removed, errors
