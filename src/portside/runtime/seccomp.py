"""OCI linux.seccomp -> a kernel seccomp filter, with runc's semantics.

validate_seccomp() runs in the runtime before it forks, so a bad profile is
one clear line and nothing is half-made; load_seccomp() runs in the container
init just before exec and installs the filter into the calling process. Rule
semantics follow runc: unknown syscall names are skipped (a profile lists
syscalls newer or older than this kernel), rules whose action equals the
default are dropped, and conditions on one argument index that repeat fall
back to one rule per condition (libseccomp cannot AND two tests of one arg).
"""

from __future__ import annotations

import errno as errno_mod
import os

# not collections.abc: that loads the collections package (and `json` loads `re`, `enum`,
# `functools`...) into every monitor zygote that preloads the runtime, and every monitor
# maps those pages (see portside/monitor/inproc.py)
from _collections_abc import Mapping

from portside.errors import InvalidSeccompConfig, SeccompError
from portside.linux import seccomp as lib
from portside.runtime import fastjson

TYPE_CHECKING = False  # typing is not imported on the container start path
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

ACTIONS = (
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
)

OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": lib.SCMP_CMP_NE,
    "SCMP_CMP_LT": lib.SCMP_CMP_LT,
    "SCMP_CMP_LE": lib.SCMP_CMP_LE,
    "SCMP_CMP_EQ": lib.SCMP_CMP_EQ,
    "SCMP_CMP_GE": lib.SCMP_CMP_GE,
    "SCMP_CMP_GT": lib.SCMP_CMP_GT,
    "SCMP_CMP_MASKED_EQ": lib.SCMP_CMP_MASKED_EQ,
}

ARCHITECTURES = (
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)

FLAGS = tuple(lib.FILTER_FLAGS)

_MAX_ARGS = 6
_OPTIMIZE_ABOVE = 32  # rules; libseccomp's binary tree misbehaves with none (runc's note)


class CompiledFilter:
    """What load_seccomp needs in the child: no libseccomp calls left after fork."""

    __slots__ = ("flags", "notify", "program", "skipped")

    def __init__(
        self, program: bytes, flags: int, notify: bool, skipped: list[str] | None = None
    ) -> None:
        self.program = program
        self.flags = flags
        self.notify = notify
        self.skipped = skipped or []


def _bad(msg: str) -> InvalidSeccompConfig:
    return InvalidSeccompConfig(f"linux.seccomp: {msg}")


def _uint(value: Any, what: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise _bad(f"{what} must be an unsigned {bits}-bit integer, got {value!r}")
    return value


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name not in ACTIONS:
        raise _bad(f"{where}: unknown action {name!r} (one of {', '.join(ACTIONS)})")
    if errno_ret is not None:
        errno_ret = _uint(errno_ret, f"{where}: errnoRet", 16)
        if name not in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            raise _bad(f"{where}: errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE")
    ret = errno_mod.EPERM if errno_ret is None else errno_ret
    match name:
        case "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD":
            return lib.SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS":
            return lib.SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP":
            return lib.SCMP_ACT_TRAP
        case "SCMP_ACT_ERRNO":
            return lib.act_errno(ret)
        case "SCMP_ACT_TRACE":
            return lib.act_trace(ret)
        case "SCMP_ACT_LOG":
            return lib.SCMP_ACT_LOG
        case "SCMP_ACT_NOTIFY":
            return lib.SCMP_ACT_NOTIFY
    return lib.SCMP_ACT_ALLOW


def _arch_token(name: Any) -> int:
    if name not in ARCHITECTURES:
        raise _bad(f"unknown architecture {name!r}")
    token = lib.resolve_arch(str(name).removeprefix("SCMP_ARCH_").lower())
    if token is None:
        v = ".".join(map(str, lib.version()))
        raise _bad(f"architecture {name} is not supported by libseccomp {v}")
    return token


def _conditions(args: Any, where: str) -> list[lib.Condition]:
    if args is None:
        return []
    if not isinstance(args, list):
        raise _bad(f"{where}: args must be a list")
    out = []
    for i, arg in enumerate(args):
        at = f"{where}.args[{i}]"
        if not isinstance(arg, Mapping):
            raise _bad(f"{at} must be an object")
        index = _uint(arg.get("index"), f"{at}.index", 32)
        if index >= _MAX_ARGS:
            raise _bad(f"{at}.index {index} is out of range (a syscall has at most 6 arguments)")
        op = arg.get("op")
        if op not in OPERATORS:
            raise _bad(f"{at}: unknown operator {op!r} (one of {', '.join(OPERATORS)})")
        value = _uint(arg.get("value", 0), f"{at}.value", 64)
        value_two = _uint(arg.get("valueTwo", 0), f"{at}.valueTwo", 64)
        out.append(lib.Condition(index, OPERATORS[op], value, value_two))
    return out


def compile_seccomp(config: Mapping[str, Any]) -> CompiledFilter:
    """Check the whole profile and build its BPF program; raises InvalidSeccompConfig."""
    if not isinstance(config, Mapping):
        raise _bad("must be an object")
    if not lib.available():
        raise SeccompError("seccomp requested but libseccomp (libseccomp.so.2) is not installed")
    default_name = config.get("defaultAction")
    if default_name is None:
        raise _bad("defaultAction is required")
    default = _action(default_name, config.get("defaultErrnoRet"), "defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        raise _bad("SCMP_ACT_NOTIFY cannot be the default action")

    flags = 0
    for flag in config.get("flags") or []:
        if flag not in lib.FILTER_FLAGS:
            raise _bad(f"unknown flag {flag!r} (one of {', '.join(FLAGS)})")
        flags |= lib.FILTER_FLAGS[flag]

    arches = [_arch_token(a) for a in config.get("architectures") or []]

    syscalls = config.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _bad("syscalls must be a list")
    # Validate everything before touching libseccomp, so errors name the rule.
    rules: list[tuple[list[str], int, list[lib.Condition], str]] = []
    notify = False
    for i, rule in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(rule, Mapping):
            raise _bad(f"{where} must be an object")
        names = rule.get("names")
        if not isinstance(names, list) or not names:
            raise _bad(f"{where}.names must be a non-empty list of syscall names")
        for name in names:
            if not isinstance(name, str) or not name:
                raise _bad(f"{where}.names has an empty or non-string name {name!r}")
        action_name = rule.get("action")
        action = _action(action_name, rule.get("errnoRet"), where)
        if action_name == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                raise _bad(f"{where}: SCMP_ACT_NOTIFY cannot be used for the write syscall")
        rules.append((names, action, _conditions(rule.get("args"), where), where))

    if notify:
        if not config.get("listenerPath"):
            raise _bad("SCMP_ACT_NOTIFY is used but listenerPath is not set")
        if lib.api_level() < 6:
            raise SeccompError(
                f"seccomp notify needs libseccomp API level 6 (have {lib.api_level()})"
            )
        flags |= lib.SECCOMP_FILTER_FLAG_NEW_LISTENER
        if flags & lib.SECCOMP_FILTER_FLAG_TSYNC:
            # The kernel refuses TSYNC with a listener unless a failure is reported as ESRCH.
            flags |= lib.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    elif flags & lib.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV:
        raise _bad("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule")

    skipped: list[str] = []
    try:
        with lib.Filter(default) as flt:
            for token in arches:
                flt.add_arch(token)
            if sum(len(r[0]) for r in rules) > _OPTIMIZE_ABOVE:
                try:  # noqa: SIM105 - contextlib costs start-up time
                    flt.set_attr(lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)
                except OSError:  # an older libseccomp: a linear filter is still correct
                    pass
            for names, action, conds, where in rules:
                if action == default:
                    continue
                for name in names:
                    nr = lib.resolve_syscall(name)
                    if nr is None:
                        skipped.append(name)
                        continue
                    _add_rule(flt, action, nr, conds, f"{where} ({name})")
            program = flt.compile()
    except OSError as exc:
        raise SeccompError(f"seccomp: building the filter failed: {exc.strerror}") from exc
    if _wants_enosys_stub(default_name, config.get("defaultErrnoRet")):
        program = enosys_stub(arches, [n for names, _a, _c, _w in rules for n in names]) + program
    return CompiledFilter(program=program, flags=flags, notify=notify, skipped=skipped)


# -- the -ENOSYS stub -------------------------------------------------------------
#
# A profile lists the syscalls its authors knew. A syscall newer than every one it
# names (clone3, close_range, ... on an old profile) would get the default action,
# typically EPERM, and libc would not fall back to the older call as it does on
# ENOSYS. As runc does, we put a small classic-BPF prologue before libseccomp's
# program: per listed architecture, a syscall number above the largest one the
# profile names returns ENOSYS. x32 shares x86_64's AUDIT_ARCH and is told apart
# by bit 30 of the syscall number.

_X32_BIT = 0x40000000
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token; the kernel reports x86_64
_RET_ENOSYS = lib.act_errno(errno_mod.ENOSYS)

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGT_K = 0x25
_JSET_K = 0x45
_JA = 0x05
_RET_K = 0x06


def _wants_enosys_stub(default_action: str, default_errno: Any) -> bool:
    if default_action in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        return False
    return not (default_action == "SCMP_ACT_ERRNO" and default_errno == errno_mod.ENOSYS)


def enosys_stub(arch_tokens: list[int], names: list[str]) -> bytes:
    """The prologue's instructions (struct sock_filter[]) for the listed architectures."""
    groups: dict[int, dict[str, int]] = {}  # audit arch -> {"x32" | "native": max nr}
    for token in arch_tokens:
        audit = _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token
        mode = "x32" if token == _SCMP_ARCH_X32 else "native"
        largest = -1
        for name in names:
            nr = lib.resolve_syscall(name, token)
            if nr is not None and nr > largest:
                largest = nr
        if largest > 0:
            groups.setdefault(audit, {})[mode] = largest
    if not groups:
        return b""
    # Assemble with labels: ("jmp", opcode, k, true_label, false_label), ("ja", label), ...
    code: list[tuple[Any, ...]] = []
    for n, (audit, modes) in enumerate(groups.items()):
        nxt, ret, flt = f"next{n}", f"ret{n}", f"filter{n}"
        code.append(("ld", 4))  # seccomp_data.arch
        code.append(("jmp", _JEQ_K, audit, None, nxt))
        code.append(("ld", 0))  # seccomp_data.nr
        x64, x32 = modes.get("native"), modes.get("x32")
        if audit == _AUDIT_ARCH_X86_64 and x32 is not None:
            x32cmp = f"x32_{n}"
            code.append(("jmp", _JSET_K, _X32_BIT, x32cmp, None if x64 is not None else flt))
            if x64 is not None:
                code.append(("jmp", _JGT_K, x64, ret, flt))
            code.append(("label", x32cmp))
            code.append(("jmp", _JGT_K, x32, ret, flt))
        else:
            assert x64 is not None
            if audit == _AUDIT_ARCH_X86_64:  # x32 calls are not ours to judge here
                code.append(("jmp", _JSET_K, _X32_BIT, flt, None))
            code.append(("jmp", _JGT_K, x64, ret, flt))
        code.append(("label", ret))
        code.append(("ret", _RET_ENOSYS))
        code.append(("label", flt))
        code.append(("ja", "end"))
        code.append(("label", nxt))
    code.append(("label", "end"))
    return _assemble_cbpf(code)


def _assemble_cbpf(code: list[tuple[Any, ...]]) -> bytes:
    import struct

    labels: dict[str, int] = {}
    pc = 0
    for item in code:
        if item[0] == "label":
            labels[item[1]] = pc
        else:
            pc += 1
    out = []
    pc = 0
    for item in code:
        kind = item[0]
        if kind == "label":
            continue
        pc += 1  # offsets count from the next instruction
        if kind == "ld":
            out.append(struct.pack("<HBBI", _LD_W_ABS, 0, 0, item[1]))
        elif kind == "ret":
            out.append(struct.pack("<HBBI", _RET_K, 0, 0, item[1]))
        elif kind == "ja":
            out.append(struct.pack("<HBBI", _JA, 0, 0, labels[item[1]] - pc))
        else:
            _, op, k, t, f = item
            jt = 0 if t is None else labels[t] - pc
            jf = 0 if f is None else labels[f] - pc
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise SeccompError("seccomp: -ENOSYS stub jump out of range")
            out.append(struct.pack("<HBBI", op, jt, jf, k))
    return b"".join(out)


def _add_rule(
    flt: lib.Filter, action: int, nr: int, conds: list[lib.Condition], where: str
) -> None:
    indexes = [c.index for c in conds]
    groups = [conds] if len(set(indexes)) == len(indexes) else [[c] for c in conds]
    for group in groups:
        try:
            flt.add_rule(action, nr, group)
        except OSError as exc:
            raise _bad(f"{where}: libseccomp refused the rule: {exc.strerror}") from exc


def validate_seccomp(config: Mapping[str, Any]) -> None:
    """Raise InvalidSeccompConfig (a ValueError) with one line if the profile cannot load.

    The compiled program is kept, so a child forked after this finds it in
    load_seccomp() and does no libseccomp work of its own.
    """
    prepare(config)


def install(compiled: CompiledFilter) -> int | None:
    """Install a compiled filter in this process; the listener fd for NOTIFY, else None."""
    try:
        fd = lib.install_filter(compiled.program, compiled.flags)
    except OSError as exc:
        hint = ""
        if exc.errno == errno_mod.EACCES:
            hint = " (needs no_new_privs or CAP_SYS_ADMIN)"
        elif exc.errno == errno_mod.EINVAL:
            hint = " (a flag or action this kernel does not know?)"
        raise SeccompError(f"seccomp: installing the filter failed: {exc.strerror}{hint}") from exc
    return fd if compiled.notify else None


_compiled: dict[str, CompiledFilter] = {}


def _key(config: Mapping[str, Any]) -> str:
    return fastjson.dumps(config, sort_keys=True, separators=(",", ":"))


def prepare(
    config: Mapping[str, Any] | None = None, *, cache_dir: str | None = None
) -> CompiledFilter | None:
    """Load libseccomp now, while its file is in sight (before pivot_root); with a
    config, also compile it, so a later load_seccomp(config) only installs it."""
    lib.available()
    if config is None:
        return None
    key = _key(config)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = cached_compile(config, cache_dir)
    return compiled


def load_seccomp(config: Mapping[str, Any], *, cache_dir: str | None = None) -> int | None:
    """Build and install linux.seccomp in the calling process (a single-threaded child).

    Returns the user-notification listener fd when a rule uses SCMP_ACT_NOTIFY.
    A filter compiled by prepare(config) earlier in this process (or before the
    fork) is reused, so the child does no libseccomp work.
    """
    compiled = _compiled.get(_key(config)) or cached_compile(config, cache_dir)
    return install(compiled)


_CACHE_FORMAT = 1


def cached_compile(config: Mapping[str, Any], cache_dir: str | None) -> CompiledFilter:
    """compile_seccomp() through an on-disk cache of compiled programs.

    Compiling a full profile takes tens of milliseconds of libseccomp work on
    every container start; the same profile (the engine's default) compiles to
    the same program for a given libseccomp and machine, so it is keyed by
    those. `cache_dir` must be as trusted as the runtime's state (under --root):
    a program read from it is installed as it is.
    """
    if cache_dir is None:
        return compile_seccomp(config)
    try:  # built into the interpreter; hashlib would load libcrypto (~10 ms a container)
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    uname = os.uname()  # the kernel too: which flags and actions it knows shapes the result
    ident = f"{_CACHE_FORMAT}|{lib.version()}|{uname.machine}|{uname.release}|{_key(config)}"
    path = os.path.join(cache_dir, sha256(ident.encode()).hexdigest() + ".bpf")
    try:
        with open(path, "rb") as f:
            header, _, program = f.read().partition(b"\n")
        meta = fastjson.loads(header)
        return CompiledFilter(program, int(meta["flags"]), bool(meta["notify"]), meta["skipped"])
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: compile and rewrite
    compiled = compile_seccomp(config)
    meta_line = fastjson.dumps(
        {"flags": compiled.flags, "notify": compiled.notify, "skipped": compiled.skipped}
    ).encode()
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(meta_line + b"\n" + compiled.program)
        os.rename(tmp, path)
    except OSError:
        pass  # a read-only or full disk only costs the next start a compile
    return compiled


def listener_message(
    state: Mapping[str, Any], *, metadata: str = "", oci_version: str = "1.2.0"
) -> bytes:
    """The container process state the spec sends with the listener fd."""
    payload = {
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": int(state.get("pid") or 0),
        "metadata": metadata,
        "state": dict(state),
    }
    return fastjson.dumps(payload, separators=(",", ":")).encode()


def send_listener_fd(
    listener_path: str,
    fd: int,
    state: Mapping[str, Any] | str,
    *,
    metadata: str = "",
) -> None:
    """Connect to listenerPath and pass the notify fd with SCM_RIGHTS, as the runtime spec says.

    `state` is the container's state (dict or JSON text, with its pid), and
    `metadata` is linux.seccomp.listenerMetadata.
    """
    if isinstance(state, str):
        state = fastjson.loads(state)
    assert isinstance(state, Mapping)
    message = listener_message(
        state, metadata=metadata, oci_version=state.get("ociVersion", "1.2.0")
    )
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            sock.connect(listener_path)
        except OSError as exc:
            raise SeccompError(
                f"seccomp: cannot connect to listenerPath {listener_path}: {exc.strerror}"
            ) from exc
        socket.send_fds(sock, [message], [fd])
    finally:
        sock.close()


def profile_to_oci(
    profile: Mapping[str, Any],
    capabilities: Iterable[str] = (),
    *,
    machine: str | None = None,
) -> dict[str, Any]:
    """Turn a moby/containers seccomp profile (archMap, includes/excludes) into linux.seccomp.

    Keeps a rule when all its includes.caps are in `capabilities`, none of its
    excludes.caps are, and its includes.arches (Go names) match the machine.
    """
    caps = set(capabilities)
    goarch = _GOARCH.get(machine or os.uname().machine, machine or os.uname().machine)
    native = _NATIVE_SCMP.get(goarch)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches: list[str] = []
    for entry in profile.get("archMap") or []:
        if native is not None and entry.get("architecture") == native:
            arches = [native, *entry.get("subArchitectures", [])]
    if not arches and profile.get("architectures"):
        arches = list(profile["architectures"])
    if arches:
        out["architectures"] = arches
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]
    rules = []
    for rule in profile.get("syscalls") or []:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if exc.get("caps") and set(exc["caps"]) & caps:
            continue
        if inc.get("arches") and goarch not in inc["arches"]:
            continue
        if exc.get("arches") and goarch in exc["arches"]:
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        item: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("args"):
            item["args"] = [dict(a) for a in rule["args"]]
        errno_ret = rule.get("errnoRet")
        if errno_ret is not None:
            item["errnoRet"] = errno_ret
        rules.append(item)
    out["syscalls"] = rules
    return out


_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "i686": "386",
    "i386": "386",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "mips64": "mips64",
}
_NATIVE_SCMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "arm64": "SCMP_ARCH_AARCH64",
    "386": "SCMP_ARCH_X86",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64",
}


def default_profile() -> dict[str, Any]:
    """The vendored containers/common default profile (moby format; see profile_to_oci)."""
    from importlib import resources

    text = resources.files("portside").joinpath("data/seccomp/default.json").read_text()
    data = fastjson.loads(text)
    assert isinstance(data, dict)
    return data


_ACTION_VALUES = {
    "SCMP_ACT_KILL": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": lib.SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": lib.SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": lib.SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": lib.SCMP_ACT_ERRNO_BASE,
    "SCMP_ACT_TRACE": lib.SCMP_ACT_TRACE_BASE,
    "SCMP_ACT_ALLOW": lib.SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": lib.SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": lib.SCMP_ACT_NOTIFY,
}


def features() -> dict[str, Any]:
    """linux.seccomp of `portside-runtime features`, from what this kernel and libseccomp do."""
    if not lib.available():
        return {"enabled": False}
    actions = [a for a in ACTIONS if lib.action_available(_ACTION_VALUES[a])]
    if "SCMP_ACT_NOTIFY" in actions and lib.api_level() < 6:
        actions.remove("SCMP_ACT_NOTIFY")
    archs = [a for a in ARCHITECTURES if lib.resolve_arch(a.removeprefix("SCMP_ARCH_").lower())]
    return {
        "enabled": True,
        "actions": actions,
        "operators": list(OPERATORS),
        "archs": archs,
        "knownFlags": list(FLAGS),
        "supportedFlags": [f for f in FLAGS if lib.flag_supported(lib.FILTER_FLAGS[f])],
    }


def default_linux_seccomp(
    capabilities: Iterable[str], machine: str | None = None
) -> dict[str, Any]:
    """linux.seccomp for a container with these (bounding) capabilities: the vendored
    default profile, converted; what the engine's specgen puts in config.json."""
    return profile_to_oci(default_profile(), capabilities, machine=machine)
