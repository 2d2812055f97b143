"""The build context: a directory (or an unpacked tar), its ignore file, and what
COPY/ADD select from it, with a content hash for the layer cache.

Ignore patterns follow docker's rules: one per line, `#` comments, `!` exceptions,
the last matching pattern decides, `*` `?` `[...]` within one path component,
`**` across any number of them, and a pattern that matches a directory also
matches everything below it. `.containerignore` is preferred over `.dockerignore`
(as podman does), and `<Dockerfile>.dockerignore` over both (as buildkit does).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import tarfile

from portside.errors import BuildError, DockerfileSyntaxError, FileAccessError

IGNORE_FILES = (".containerignore", ".dockerignore")
DOCKERFILE_NAMES = ("Containerfile", "Dockerfile")


def find_dockerfile(context_dir: str | Path, name: str | None = None) -> Path:
    """The build file: `-f NAME` (relative to the current directory, as docker and podman
    take it), else Containerfile, else Dockerfile in the context (podman's order)."""
    if name:
        path = Path(name)
        if not path.is_file():
            raise BuildError(f"{name}: no such Containerfile/Dockerfile")
        return path
    for candidate in DOCKERFILE_NAMES:
        path = Path(context_dir) / candidate
        if path.is_file():
            return path
    raise BuildError(f"{context_dir}: no Containerfile or Dockerfile in the build context")


@dataclass(frozen=True)
class Pattern:
    """One ignore-file line, compiled."""

    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _translate(pattern: str, source: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append(".*" if i >= n else "(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = i + 1
            body = []
            if j < n and pattern[j] in "^!":
                body.append("^")
                j += 1
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    body.append(re.escape(pattern[j + 1]))
                    j += 2
                    continue
                body.append(pattern[j] if pattern[j] == "-" else re.escape(pattern[j]))
                j += 1
            if j >= n or len(body) == 0 or body == ["^"]:
                raise DockerfileSyntaxError(f"{source}: bad pattern {pattern!r}")
            out.append("[" + "".join(body) + "]")
            i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise DockerfileSyntaxError(f"{source}: bad pattern {pattern!r}: {e}") from None


def clean_pattern(text: str) -> str:
    """Docker's normalisation: filepath.Clean, and a leading / means the context root."""
    p = posixpath.normpath(text) if text else text
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    if len(p) > 1 and p.startswith("/"):
        p = p[1:]
    return p


class IgnoreMatcher:
    """Ordered patterns; `excluded(path)` says whether COPY/ADD may see a context path."""

    def __init__(self, lines: Iterable[str], source: str = ".dockerignore") -> None:
        self.patterns: list[Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
                if not line:
                    raise DockerfileSyntaxError(f"{source}: illegal exclusion pattern: '!'")
            text = clean_pattern(line)
            if text == ".":
                continue  # docs: "for historical reasons, the pattern . is ignored"
            self.patterns.append(Pattern(text, exclusion, _translate(text, source)))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        rel = clean_pattern(path)
        parent = posixpath.dirname(rel)
        parents = parent.split("/") if parent else []
        result = False
        for pat in self.patterns:
            hit = bool(pat.regex.match(rel))
            if not hit:
                for i in range(len(parents)):
                    if pat.regex.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                result = not pat.exclusion
        return result


@dataclass(frozen=True)
class Entry:
    path: str
    """Relative to the context root, with / separators; "." is the root itself."""
    kind: str
    """"file", "dir", "symlink" or "other"."""
    mode: int


class BuildContext:
    """A directory the build reads from; paths outside it are refused."""

    def __init__(self, root: Path, ignore: IgnoreMatcher | None = None) -> None:
        self.root = Path(root).resolve()
        self.ignore = ignore or IgnoreMatcher([])

    @classmethod
    def from_directory(cls, path: str | Path, dockerfile: str | None = None) -> BuildContext:
        root = Path(path)
        if not root.is_dir():
            raise BuildError(f"build context {str(path)!r} is not a directory")
        candidates = []
        if dockerfile:
            candidates.append(Path(dockerfile).name + ".dockerignore")
        candidates.extend(IGNORE_FILES)
        for name in candidates:
            f = root / name
            if f.is_file():
                try:
                    text = f.read_text(encoding="utf-8", errors="replace")
                except OSError as e:
                    raise FileAccessError.from_os(e, str(f)) from None
                return cls(root, IgnoreMatcher(text.splitlines(), name))
        return cls(root)

    @classmethod
    def from_tar(
        cls, stream: IO[bytes], dest: str | Path, dockerfile: str | None = None
    ) -> BuildContext:
        """Unpack a context tar (e.g. from stdin) into `dest`, refusing entries that escape."""
        import tarfile  # only here: a directory context, the usual case, never needs it

        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for member in tf:
                    _extract_member(tf, member, dest)
        except tarfile.TarError as e:
            raise BuildError(f"build context tar: {e}") from None
        return cls.from_directory(dest, dockerfile)

    # -- lookups ---------------------------------------------------------------------------
    def _abs(self, rel: str) -> Path:
        return self.root / rel if rel != "." else self.root

    def normalize(self, src: str) -> str:
        """A COPY source as a context-relative path; `..` may not leave the context."""
        p = posixpath.normpath("/" + src if src else "/")
        if src and re.match(r"^(\.\./|\.\.$)", posixpath.normpath(src)):
            raise BuildError(f"{src}: outside the build context")
        rel = p.lstrip("/")
        return rel or "."

    def excluded(self, rel: str) -> bool:
        return rel != "." and self.ignore.excluded(rel)

    def entries(self, rel: str = ".", extra_excludes: Iterable[str] = ()) -> Iterator[Entry]:
        """`rel` and, for a directory, everything below it that is not ignored, sorted."""
        extra = IgnoreMatcher(list(extra_excludes), "--exclude") if extra_excludes else None
        base = self._abs(rel)
        st = os.lstat(base)
        yield Entry(rel, _kind(st.st_mode), stat.S_IMODE(st.st_mode))
        if not stat.S_ISDIR(st.st_mode):
            return
        prune = not self.ignore.has_exceptions and not (extra and extra.has_exceptions)
        yield from self._walk(rel, extra, prune, rel)

    def _walk(
        self, rel: str, extra: IgnoreMatcher | None, prune: bool, top: str
    ) -> Iterator[Entry]:
        try:
            names = sorted(os.listdir(self._abs(rel)))
        except OSError as e:
            raise FileAccessError.from_os(e) from None
        for name in names:
            child = name if rel == "." else f"{rel}/{name}"
            st = os.lstat(self._abs(child))
            inner = child if top == "." else child[len(top) + 1 :]
            hidden = self.excluded(child) or bool(extra and extra.excluded(inner))
            if not hidden:
                yield Entry(child, _kind(st.st_mode), stat.S_IMODE(st.st_mode))
            if stat.S_ISDIR(st.st_mode) and not (hidden and prune):
                yield from self._walk(child, extra, prune, top)

    def resolve_sources(self, sources: Iterable[str]) -> list[str]:
        """COPY/ADD sources (with filepath.Match wildcards) -> context-relative paths.

        A source that matches nothing visible (missing, or ignored) is an error, as in docker.
        """
        out: list[str] = []
        for src in sources:
            rel = self.normalize(src)
            if not re.search(r"[*?\[]", rel):
                if not os.path.lexists(self._abs(rel)) or self.excluded(rel):
                    raise BuildError(
                        f"{src}: not found in the build context (or excluded by "
                        ".containerignore/.dockerignore)"
                    )
                out.append(rel)
                continue
            matches = sorted(self._glob(rel.split("/")))
            matches = [m for m in matches if not self.excluded(m)]
            if not matches:
                raise BuildError(
                    f"{src}: no source files were specified (the pattern matched none)"
                )
            out.extend(matches)
        return out

    def _glob(self, parts: list[str], prefix: str = "") -> Iterator[str]:
        if not parts:
            yield prefix
            return
        head, rest = parts[0], parts[1:]
        here = self._abs(prefix or ".")
        if not re.search(r"[*?\[]", head):
            nxt = f"{prefix}/{head}" if prefix else head
            if os.path.lexists(self._abs(nxt)):
                yield from self._glob(rest, nxt)
            return
        rx = _translate(head, "COPY")
        try:
            names = sorted(os.listdir(here))
        except OSError:
            return
        for name in names:
            if rx.match(name):
                nxt = f"{prefix}/{name}" if prefix else name
                if rest and not os.path.isdir(self._abs(nxt)):
                    continue
                yield from self._glob(rest, nxt)

    def plan_copy(
        self,
        sources: Iterable[str],
        dest: str,
        *,
        workdir: str = "/",
        parents: bool = False,
        excludes: Iterable[str] = (),
    ) -> list[CopyItem]:
        """Where each selected entry lands: a directory source copies its contents, a file
        lands at dest (or dest/name when dest ends in /); --parents keeps source paths.
        Parent directories of an entry that are not listed are for the builder to create."""
        return _plan_copy(self, list(sources), dest, workdir, parents, list(excludes))

    def content_hash(
        self,
        sources: Iterable[str],
        excludes: Iterable[str] = (),
        file_digest: Callable[[str, os.stat_result], bytes] | None = None,
    ) -> str:
        """sha256 over what a COPY/ADD would copy: sorted relative paths, types, permission
        bits, file contents and link targets; not mtimes or owners (COPY resets owners).
        `file_digest(path, stat)` may supply a file's sha256 (a cache keyed by its stat,
        as buildkit keeps one); by default every file is read."""
        h = hashlib.sha256()
        excl = list(excludes)
        for named in self.resolve_sources(sources):
            h.update(b"S" + named.encode() + b"\0")
            src = _follow(self, named)  # what COPY copies: a named symlink's target
            for e in self.entries(src, excl):
                name = e.path[len(src) :].lstrip("/") if src != "." else e.path
                h.update(f"{e.kind}\0{name}\0{e.mode:o}\0".encode())
                full = self._abs(e.path)
                if e.kind == "file":
                    if file_digest is not None:
                        h.update(file_digest(str(full), os.stat(full)))
                    else:
                        h.update(sha256_file(str(full)))
                elif e.kind == "symlink":
                    h.update(os.readlink(full).encode())
        return "sha256:" + h.hexdigest()


def sha256_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


@dataclass(frozen=True)
class CopyItem:
    """One entry a COPY/ADD writes: context path -> absolute path in the image."""

    src: str
    dest: str
    kind: str
    mode: int


def _plan_copy(
    ctx: BuildContext,
    sources: list[str],
    dest: str,
    workdir: str,
    parents: bool,
    excludes: list[str],
) -> list[CopyItem]:
    resolved = ctx.resolve_sources(sources)
    excl = IgnoreMatcher(excludes, "--exclude") if excludes else None
    if excl:
        resolved = [r for r in resolved if r == "." or not excl.excluded(r)]
    dest_is_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    target = posixpath.normpath(posixpath.join("/", workdir or "/", dest or "."))
    target = "/" + target.lstrip("/")
    if len(resolved) > 1 and not dest_is_dir:
        raise BuildError(
            f"{dest}: with more than one source the destination must be a directory ending in /"
        )
    items: list[CopyItem] = []
    for named in resolved:
        # a source named directly (or by a wildcard) is followed if it is a symlink,
        # as docker and buildah do; links inside a copied directory stay links
        src = _follow(ctx, named)
        st = os.lstat(ctx._abs(src))
        base = target
        if parents and src != ".":
            pivot = _pivot(sources, src)
            base = posixpath.join(target, pivot)
            if not stat.S_ISDIR(st.st_mode):
                items.append(CopyItem(src, base, _kind(st.st_mode), stat.S_IMODE(st.st_mode)))
                continue
        if stat.S_ISDIR(st.st_mode):
            for e in ctx.entries(src, excludes):
                rel = e.path[len(src) :].lstrip("/") if src != "." else e.path
                if e.path == src:
                    # the directory itself is not copied, only its contents: the
                    # destination is created (0755) if missing, as docker and buildah do
                    items.append(CopyItem(e.path, base, "dir", 0o755))
                    continue
                items.append(CopyItem(e.path, posixpath.join(base, rel), e.kind, e.mode))
            continue
        out = posixpath.join(target, posixpath.basename(named)) if dest_is_dir else target
        items.append(CopyItem(src, out, _kind(st.st_mode), stat.S_IMODE(st.st_mode)))
    return items


def _follow(ctx: BuildContext, rel: str) -> str:
    """Resolve symlinks in a context path, never leaving the context (an absolute or
    climbing target is taken relative to the context root)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        cur = "/".join([*done, part])
        full = ctx.root / cur
        if full.is_symlink():
            hops += 1
            if hops > 40:
                raise BuildError(f"{rel}: too many levels of symbolic links")
            link = os.readlink(full)
            if link.startswith("/"):
                done = []
            parts = [p for p in link.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    resolved = "/".join(done) or "."
    if not os.path.lexists(ctx._abs(resolved)):
        raise BuildError(f"{rel}: symbolic link to a missing file")
    if ctx.excluded(resolved):  # a link must not reach what the ignore file hides
        raise BuildError(
            f"{rel}: not found in the build context (or excluded by .containerignore/.dockerignore)"
        )
    return resolved


def _pivot(sources: list[str], src: str) -> str:
    """--parents keeps a source's path, from a `/./` pivot in the source if it has one."""
    for raw in sources:
        if "/./" in raw:
            head = posixpath.normpath(raw.split("/./", 1)[0]).lstrip("/")
            if src == head or src.startswith(head + "/"):
                return src[len(head) :].lstrip("/")
    return src


def add_source_kind(src: str) -> str:
    """ADD's three kinds of source: "git" (a repository), "url" (a file to download),
    or "local" (a context path; tar archives among them are unpacked)."""
    if src.startswith(("git://", "git@")) or re.match(r"^https?://[^#]+\.git(#.*)?$", src):
        return "git"
    if src.startswith(("http://", "https://")):
        return "url"
    return "local"


def tar_compression(path: str | Path) -> str | None:
    """For a file ADD would unpack: "none", "gzip", "bzip2", "xz" or "zstd"; None when
    it is not a tar archive (then ADD copies it as it is). Decided by content, not name."""
    from portside.images.archive_detect import detect_compression, open_decompressed

    try:
        with open(path, "rb") as raw:
            compression = detect_compression(raw.read(8))
            raw.seek(0)
            try:
                reader = open_decompressed(raw, compression)
                block = reader.read(512)
            except Exception:  # a corrupt stream is not an archive: copied as is
                return None
    except OSError as e:
        raise FileAccessError.from_os(e, str(path)) from None
    return (compression or "none") if _is_tar_header(block) else None


def _is_tar_header(block: bytes) -> bool:
    """A first tar header (ustar or old v7): a name and a matching header checksum."""
    if len(block) < 512 or block[0] == 0:
        return False
    field = block[148:156].split(b"\0", 1)[0].strip()
    try:
        stored = int(field or b"x", 8)
    except ValueError:
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return stored == computed


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _extract_member(tf: tarfile.TarFile, m: tarfile.TarInfo, dest: Path) -> None:
    name = posixpath.normpath("/" + m.name).lstrip("/")
    if not name or name == ".":
        return
    target = dest / name
    _no_symlink_dirs(dest, name, m.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if m.isdir():
        # an earlier member may have put a symlink here: chmod must not follow it out
        if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
            os.unlink(target)
        target.mkdir(exist_ok=True)
        os.chmod(target, (m.mode & 0o7777) | 0o700)
    elif m.isreg():
        src = tf.extractfile(m)
        assert src is not None
        tmp = target.with_name(target.name + ".portside-tmp")
        if os.path.lexists(tmp):  # a member of that name (e.g. a symlink out) goes first
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, m.mode & 0o7777)
        os.replace(tmp, target)
    elif m.issym():
        if os.path.lexists(target):
            os.unlink(target)
        os.symlink(m.linkname, target)
    elif m.islnk():
        link_rel = posixpath.normpath("/" + m.linkname).lstrip("/")
        _no_symlink_dirs(dest, link_rel + "/x", m.name)
        link_src = dest / link_rel
        if os.path.lexists(target):
            os.unlink(target)
        os.link(link_src, target, follow_symlinks=False)
    # devices, fifos: not part of a build context; skipped


def _no_symlink_dirs(dest: Path, rel: str, what: str) -> None:
    """Refuse a path whose directories include a symlink (it could lead out of dest)."""
    cur = dest
    for part in rel.split("/")[:-1]:
        cur = cur / part
        if cur.is_symlink():
            raise BuildError(f"build context tar: {what}: path goes through a symlink")
