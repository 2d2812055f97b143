"""`run --rm IMG true` with the default network, beside `--network none` and podman's
default network (issue 8's goal: portside with its network at most half of podman's median).

Every command runs inside a network namespace this case makes (`nsenter --net=`), so the
bridges (our portside0, podman's cni-podman0), veths and iptables rules are made there and
vanish with it: nothing is added to the machine's own namespace. The cleanup waits for the
last exit command's DEL, removes that namespace, our CNI state in the bench run root (IPAM
dir, result cache) and the monitor zygote that was started inside the namespace (so later
cases do not fork monitors from it).
"""

from __future__ import annotations

from benchmarks.harness import PODMAN_LABEL, PORTSIDE, PORTSIDE_RUNROOT, REG, WORK, Case

IMAGE = f"{REG}/busybox:latest"
NETNS = WORK / "netns-bench"
IN_NS = f"nsenter --net={NETNS}"

_STOP_ZYGOTE = f"""
for f in {PORTSIDE_RUNROOT}/monitor-zygote-*.pid; do
  [ -e "$f" ] || continue
  pid=$(cat "$f")
  grep -q "{PORTSIDE_RUNROOT}" /proc/$pid/cmdline 2>/dev/null && kill "$pid"
done
true
"""

SETUP = f"""
set -e
{_STOP_ZYGOTE}
mkdir -p {WORK}
if ! mountpoint -q {NETNS} 2>/dev/null; then
  touch {NETNS}
  unshare --net={NETNS} true
fi
{IN_NS} ip link set lo up
{PORTSIDE} pull -q --tls-verify=false {IMAGE} >/dev/null
{IN_NS} {PORTSIDE} run --rm {IMAGE} true
{IN_NS} {PORTSIDE} run --rm --network none {IMAGE} true
"""

CLEANUP = f"""
for i in $(seq 100); do
  ls {PORTSIDE_RUNROOT}/netns 2>/dev/null | grep -q . || break
  sleep 0.1
done
{_STOP_ZYGOTE}
umount {NETNS} 2>/dev/null; rm -f {NETNS}
rm -rf {PORTSIDE_RUNROOT}/cni {PORTSIDE_RUNROOT}/netdown {PORTSIDE_RUNROOT}/dns
true
"""


def cases() -> list[Case]:
    return [
        Case(
            name="network: run --rm busybox true, default network",
            portside=f"{IN_NS} {PORTSIDE} run --rm {IMAGE} true",
            peers={
                "podman": f"{IN_NS} podman run --rm --label {PODMAN_LABEL} {IMAGE} true",
                "portside --network none": f"{IN_NS} {PORTSIDE} run --rm --network none "
                f"{IMAGE} true",
            },
            needs=("registry", "peer-images", "podman"),
            setup=SETUP,
            cleanup=CLEANUP,
            runs=15,
            warmup=2,
            note="all inside a network namespace of the bench's own; podman: its CNI bridge "
            "(bridge, portmap, firewall, tuning), portside: bridge (portmap skipped without -p)",
        )
    ]
