"""The container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs only in the container's init, in its own mount namespace. Every destination
is resolved inside the rootfs as the container would see it (`secure_join`), so a
symlink planted in an image can never send a mount to the host.
"""

from __future__ import annotations

import _stat as stat  # the C module: stat.py only adds names to it
import errno
import posix

from portside.errors import RuntimeFailure
from portside.linux import libc, pathops, syscalls
from portside.runtime.specconv import Config, Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_SYMLINKS = 255

# flags a bind remount must keep: in a user namespace the kernel locks them.
_LOCKED = {1: libc.MS_RDONLY, 2: libc.MS_NOSUID, 4: libc.MS_NODEV, 8: libc.MS_NOEXEC}

DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)


def secure_join(root: str, unsafe: str) -> str:
    """Resolve `unsafe` as if `root` were `/`: `..` and symlinks never climb out of root.

    The result has no symlink in its existing part; components that do not
    exist yet are appended lexically (they cannot be symlinks).
    """
    root = root.rstrip("/") or "/"
    pending = [c for c in unsafe.split("/") if c and c != "."]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join([*resolved, part])
        try:
            st = posix.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise RuntimeFailure(f"{unsafe}: too many levels of symbolic links")
        target = posix.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        more = [c for c in target.split("/") if c and c != "."]
        more.reverse()
        pending.extend(more)
    return root + "/" + "/".join(resolved) if resolved else root


def _mkdir_all(path: str, mode: int = 0o755) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        pathops.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        pass


def _create_target(dest: str, source_is_dir: bool) -> None:
    if source_is_dir:
        _mkdir_all(dest)
        return
    _mkdir_all(pathops.dirname(dest))
    if not pathops.lexists(dest):
        posix.close(posix.open(dest, posix.O_CREAT | posix.O_WRONLY | posix.O_CLOEXEC, 0o755))


def _locked_flags(path: str) -> int:
    try:
        f = posix.statvfs(path).f_flag
    except OSError:
        return 0
    out = 0
    for bit, flag in _LOCKED.items():
        if f & bit and flag != libc.MS_RDONLY:
            out |= flag
    return out


def remount_bind(path: str, flags: int) -> None:
    """Apply per-mount flags to an existing bind mount (the kernel ignores them at bind time)."""
    syscalls.kernel.mount(
        None, path, None, flags | libc.MS_BIND | libc.MS_REMOUNT | _locked_flags(path)
    )


def _cgroup_mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, super options, root) of the host's cgroup hierarchies."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _source, sopts = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((fields[4], fstype, sopts, fields[3]))
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c.removeprefix("name=")] = path
    return out


def _mount_cgroup(cfg: Config, m: Mount, dest: str, cgroup2_dir: str | None = None) -> None:
    """A cgroup mount shows the container its own cgroups (runc's layout for v1).

    `cgroup2_dir`: the cgroup2 directory the runtime is moving the init into (it may
    not be there yet, so /proc/self/cgroup would still show the old one)."""
    flags = m.flags & ~libc.MS_RDONLY
    syscalls.kernel.mount("tmpfs", dest, "tmpfs", flags, "mode=755")
    mine = _own_cgroups()
    for mountpoint, fstype, sopts, _ in _cgroup_mounts():
        if not mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        name = mountpoint[len("/sys/fs/cgroup/") :]
        if "/" in name:
            continue
        if fstype == "cgroup2":
            sub = mine.get("", "/")
            if cgroup2_dir and cgroup2_dir.startswith(mountpoint + "/"):
                sub = cgroup2_dir[len(mountpoint) :]
        else:
            ctrls = [o.removeprefix("name=") for o in sopts.split(",") if o not in ("rw", "ro")]
            sub = next((mine[c] for c in ctrls if c in mine), "/")
        target = pathops.join(dest, name)
        _mkdir_all(target)
        syscalls.kernel.mount(mountpoint + sub, target, None, libc.MS_BIND | libc.MS_REC)
        remount_bind(target, m.flags & ~libc.MS_REC)
        if "," in name:
            for alias in name.split(","):
                link = pathops.join(dest, alias)
                if not pathops.lexists(link):
                    posix.symlink(name, link)
    if m.flags & libc.MS_RDONLY:
        syscalls.kernel.mount(
            None, dest, None, flags | libc.MS_REMOUNT | libc.MS_RDONLY, "mode=755"
        )


def mount_entry(cfg: Config, m: Mount, cgroup2_dir: str | None = None) -> None:
    dest = secure_join(cfg.rootfs, m.destination)
    if m.is_bind:
        _create_target(dest, pathops.isdir(m.source))
        syscalls.kernel.mount(m.source, dest, None, libc.MS_BIND | (m.flags & libc.MS_REC))
        # a bind takes only MS_BIND|MS_REC; the other flags need a remount.
        rest = m.flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT)
        if rest:
            remount_bind(dest, rest)
    elif m.type == "cgroup":
        _mkdir_all(dest)
        _mount_cgroup(cfg, m, dest, cgroup2_dir)
    else:
        _mkdir_all(dest)
        data = m.data
        if cfg.mount_label and m.type in ("tmpfs", "devpts", "mqueue"):
            data = f"{data},context={cfg.mount_label!r}" if data else f"context={cfg.mount_label!r}"
        try:
            syscalls.kernel.mount(m.source, dest, m.type, m.flags & ~libc.MS_REMOUNT, data or None)
        except OSError as e:
            if m.type == "sysfs" and e.errno == errno.EPERM:
                # sysfs of a network namespace we do not own: runc falls back to a bind
                syscalls.kernel.mount("/sys", dest, None, libc.MS_BIND | libc.MS_REC)
                remount_bind(dest, m.flags & ~libc.MS_REC)
            else:
                raise
    for prop in m.propagation:
        syscalls.kernel.mount(None, dest, None, prop)


def prepare_root(cfg: Config) -> None:
    """Keep our mounts from leaking to the host, and make the rootfs a mount point."""
    syscalls.kernel.mount(None, "/", None, cfg.rootfs_propagation)
    syscalls.kernel.mount(cfg.rootfs, cfg.rootfs, None, libc.MS_BIND | libc.MS_REC)


def mount_all(cfg: Config, before_cgroupfs: Callable[[], str | None] | None = None) -> None:
    """Mount the spec's mounts in order; `before_cgroupfs` runs before a cgroup mount
    (which shows the init's own cgroups, so the init must be in them by then) and may
    name the cgroup2 directory the init is on its way into."""
    for m in cfg.mounts:
        cgroup2_dir = None
        if m.type == "cgroup" and before_cgroupfs is not None:
            cgroup2_dir = before_cgroupfs()
        try:
            mount_entry(cfg, m, cgroup2_dir)
        except OSError as e:
            raise RuntimeFailure(
                f'error mounting "{m.source}" to rootfs at "{m.destination}": '
                f"{(e.strerror or str(e)).lower()}"
            ) from None


def _make_device(path: str, kind: str, major: int, minor: int, mode: int, bind: bool) -> None:
    if pathops.lexists(path) and not pathops.isdir(path):
        posix.unlink(path)
    if bind:
        # mknod is not allowed in a user namespace: bind the host's node instead
        _create_target(path, False)
        syscalls.kernel.mount(f"/dev/{pathops.basename(path)}", path, None, libc.MS_BIND)
        return
    fmt = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
    posix.mknod(path, fmt | (mode & 0o7777), posix.makedev(major, minor))
    if mode & 0o7000:  # the umask is 0 here: only the special bits may need a chmod
        posix.chmod(path, mode & 0o7777)


def setup_dev(cfg: Config, console_slave: str | None) -> None:
    in_userns = cfg.has("user")
    if cfg.setup_dev:
        old = posix.umask(0)
        try:
            for path, major, minor in DEFAULT_DEVICES:
                dest = secure_join(cfg.rootfs, path)
                _make_device(dest, "c", major, minor, 0o666, in_userns)
            for d in cfg.devices:
                dest = secure_join(cfg.rootfs, d["path"])
                _mkdir_all(pathops.dirname(dest))
                _make_device(
                    dest,
                    d["type"],
                    d.get("major", 0),
                    d.get("minor", 0),
                    d.get("fileMode", 0o666),
                    in_userns and d["type"] != "p",
                )
                if not in_userns:
                    posix.chown(dest, d.get("uid", 0), d.get("gid", 0))
        finally:
            posix.umask(old)
        dev = secure_join(cfg.rootfs, "/dev")
        links = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        if pathops.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            link = pathops.join(dev, name)
            if not pathops.lexists(link):
                posix.symlink(target, link)
        ptmx = pathops.join(dev, "ptmx")
        if pathops.isdir(pathops.join(dev, "pts")):
            if pathops.lexists(ptmx):
                posix.unlink(ptmx)
            posix.symlink("pts/ptmx", ptmx)
    if console_slave is not None:
        console = secure_join(cfg.rootfs, "/dev/console")
        _create_target(console, False)
        syscalls.kernel.mount(console_slave, console, None, libc.MS_BIND)


def pivot(rootfs: str) -> None:
    """pivot_root with the old root stacked under the new one, then lazily detached."""
    old = posix.open("/", posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
    new = posix.open(rootfs, posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        posix.fchdir(new)
        syscalls.kernel.pivot_root(".", ".")
        posix.fchdir(old)
        syscalls.kernel.mount(None, ".", None, libc.MS_SLAVE | libc.MS_REC)
        syscalls.kernel.umount2(".", libc.MNT_DETACH)
    finally:
        posix.close(old)
        posix.close(new)
    posix.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs onto / and chroot (for ramfs roots, as runc)."""
    posix.chdir(rootfs)
    syscalls.kernel.mount(rootfs, "/", None, libc.MS_MOVE)
    posix.chroot(".")
    posix.chdir("/")


def mask_path(path: str) -> None:
    try:
        if pathops.isdir(path):
            syscalls.kernel.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY)
        else:
            syscalls.kernel.mount("/dev/null", path, None, libc.MS_BIND)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise


def readonly_path(path: str) -> None:
    try:
        syscalls.kernel.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return
        raise
    remount_bind(path, libc.MS_RDONLY | libc.MS_REC)


def readonly_root() -> None:
    remount_bind("/", libc.MS_RDONLY)
