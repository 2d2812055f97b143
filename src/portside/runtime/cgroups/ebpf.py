"""The cgroup v2 device filter: device rules compiled to an eBPF program.

cgroup v2 has no devices.allow file; access is decided by a
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup, which gets
struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor} and returns
1 (allow) or 0 (deny). We emit one block per rule, last rule first (a later
rule overrides an earlier one, as in v1), each falling through to the next
when a field does not match, and end with the default verdict.
"""

from __future__ import annotations

import struct

from portside.runtime.cgroups.devices import Rule, effective_default

# eBPF opcode parts (linux/bpf.h, linux/bpf_common.h)
BPF_LDX = 0x01
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_ALU64 = 0x07
BPF_W = 0x00
BPF_MEM = 0x60
BPF_K = 0x00
BPF_AND = 0x50
BPF_RSH = 0x70
BPF_MOV = 0xB0
BPF_JNE = 0x50
BPF_EXIT = 0x90

# bpf_cgroup_dev_ctx.access_type: low 16 bits the device type, high 16 bits the access.
BPF_DEVCG_DEV_BLOCK = 1
BPF_DEVCG_DEV_CHAR = 2
BPF_DEVCG_ACC_MKNOD = 1
BPF_DEVCG_ACC_READ = 2
BPF_DEVCG_ACC_WRITE = 4

_TYPES = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}
_ACCESS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}

# registers
R0, R1, R2, R3, R4, R5 = range(6)


class Insn:
    """One struct bpf_insn."""

    __slots__ = ("code", "dst", "imm", "off", "src")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.code = code
        self.dst = dst
        self.src = src
        self.off = off
        self.imm = imm

    def __repr__(self) -> str:
        return (
            f"Insn({self.code:#04x}, dst={self.dst}, src={self.src},"
            f" off={self.off}, imm={self.imm})"
        )

    def encode(self) -> bytes:
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def ldx_w(dst: int, src: int, off: int) -> Insn:
    return Insn(BPF_LDX | BPF_W | BPF_MEM, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> Insn:
    if imm >= 1 << 31:  # the immediate is a signed 32-bit field
        imm -= 1 << 32
    return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)


def mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)


def mov32_reg(dst: int, src: int) -> Insn:
    return Insn(BPF_ALU | BPF_MOV | 0x08, dst, src)  # BPF_X = 0x08


def jne_imm(dst: int, imm: int, off: int) -> Insn:
    return Insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)


def exit_insn() -> Insn:
    return Insn(BPF_JMP | BPF_EXIT)


def _access_mask(access: str) -> int:
    mask = 0
    for c in access:
        mask |= _ACCESS[c]
    return mask


def _block(rule: Rule) -> list[Insn]:
    """Instructions for one rule; each test jumps past the block's end on a mismatch."""
    tests: list[tuple[str, int]] = []  # (kind, value)
    if rule.type != "a":
        tests.append(("type", _TYPES[rule.type]))
    mask = _access_mask(rule.access)
    if mask != 0b111:
        tests.append(("access", mask))
    if rule.major >= 0:
        tests.append(("major", rule.major))
    if rule.minor >= 0:
        tests.append(("minor", rule.minor))

    body: list[Insn | tuple[int, int]] = []  # (reg, imm): "if reg != imm skip the block"
    for kind, value in tests:
        if kind == "type":
            body.append((R2, value))
        elif kind == "access":
            # requested bits outside the rule's access -> no match
            body.append(mov32_reg(R1, R3))
            body.append(alu32_imm(BPF_AND, R1, ~value & 0xFFFFFFFF))
            body.append((R1, 0))
        elif kind == "major":
            body.append((R4, value))
        else:
            body.append((R5, value))
    body.append(mov64_imm(R0, 1 if rule.allow else 0))
    body.append(exit_insn())

    out: list[Insn] = []
    total = len(body)
    for i, item in enumerate(body):
        if isinstance(item, tuple):
            reg, imm = item
            out.append(jne_imm(reg, imm, total - i - 1))
        else:
            out.append(item)
    return out


def program(rules: list[Rule]) -> list[Insn]:
    default, rest = effective_default(rules)
    insns = [
        ldx_w(R2, R1, 0),  # access_type
        alu32_imm(BPF_AND, R2, 0xFFFF),  # device type
        ldx_w(R3, R1, 0),
        alu32_imm(BPF_RSH, R3, 16),  # requested access
        ldx_w(R4, R1, 4),  # major
        ldx_w(R5, R1, 8),  # minor
    ]
    for rule in reversed(rest):
        insns.extend(_block(rule))
    insns.append(mov64_imm(R0, 1 if default else 0))
    insns.append(exit_insn())
    return insns


def assemble(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def evaluate(insns: list[Insn], dev_type: str, major: int, minor: int, access: str) -> bool:
    """Run the program on one access, as the kernel would; for tests and `features`."""
    ctx = [(_TYPES[dev_type] | (_access_mask(access) << 16)), major, minor]
    regs = [0] * 11
    pc = 0
    while True:
        insn = insns[pc]
        pc += 1
        cls = insn.code & 0x07
        if insn.code == BPF_LDX | BPF_W | BPF_MEM:
            regs[insn.dst] = ctx[insn.off // 4]
        elif cls == BPF_ALU:
            op = insn.code & 0xF0
            src = regs[insn.src] if insn.code & 0x08 else insn.imm & 0xFFFFFFFF
            if op == BPF_AND:
                regs[insn.dst] = (regs[insn.dst] & src) & 0xFFFFFFFF
            elif op == BPF_RSH:
                regs[insn.dst] = (regs[insn.dst] & 0xFFFFFFFF) >> src
            elif op == BPF_MOV:
                regs[insn.dst] = src & 0xFFFFFFFF
            else:
                raise ValueError(f"unexpected ALU op {op:#x}")
        elif cls == BPF_ALU64 and insn.code & 0xF0 == BPF_MOV:
            regs[insn.dst] = insn.imm
        elif insn.code == BPF_JMP | BPF_JNE | BPF_K:
            if regs[insn.dst] != insn.imm & 0xFFFFFFFF:
                pc += insn.off
        elif insn.code == BPF_JMP | BPF_EXIT:
            return bool(regs[R0])
        else:
            raise ValueError(f"unexpected opcode {insn.code:#x}")
