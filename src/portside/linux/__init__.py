"""The kernel, below every other part: libc calls (libc.py, seccomp.py, bpf.py), the
Syscalls protocol the mount and namespace logic calls through (syscalls.py), what /proc
says about a process (procfs.py), and the path helpers of `os` for code that must not
import `os` (pathops.py: portside-runtime's start path, see docs/fast-paths.md)."""
