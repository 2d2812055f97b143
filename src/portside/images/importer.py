"""`portside import ROOTFS.tar[.gz] REF`: a one-layer image from a root filesystem tarball.

The tarball is read once: decompressed (whatever it was), checked block by block
as a tar (a truncated or foreign file fails naming the offset, before anything
is stored), hashed for the diffID, gzip-compressed with ISA-L and hashed again,
into one temp file. The result is an ImageSource, so the image reaches the
store through the same copy() as a pull does.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import platform as _platform
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from portside.errors import InvalidArgument, InvalidDocument, NotFound
from portside.images.archive_detect import compress_gzip, detect_compression, open_decompressed
from portside.images.transport import BlobInfo
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest, DigestVerifier

__all__ = [
    "CHANGE_INSTRUCTIONS",
    "ImportSource",
    "TarChecker",
    "apply_changes",
]

CHUNK = 1 << 20
_BLOCK = 512
CHANGE_INSTRUCTIONS = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "STOPSIGNAL",
)
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
# Tar entry types that carry no data blocks even when their size field is set.
_NO_DATA_TYPES = frozenset(b"123456")


class TarChecker:
    """Walks a tar stream's headers as it flows past, so a foreign or truncated
    file is refused without a second read."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.offset = 0  # stream offset of the next byte
        self.entries = 0
        self._header = bytearray()
        self._skip = 0
        self._ended = False

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._ended:
                self.offset += len(view)
                return
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                self.offset += n
                view = view[n:]
                continue
            n = min(_BLOCK - len(self._header), len(view))
            self._header += view[:n]
            self.offset += n
            view = view[n:]
            if len(self._header) == _BLOCK:
                self._block(bytes(self._header))
                self._header.clear()

    def _block(self, block: bytes) -> None:
        start = self.offset - _BLOCK
        if block == bytes(_BLOCK):
            if self.entries:
                self._ended = True
                return
            raise InvalidDocument(f"{self.what}: not a tar archive (starts with zero blocks)")
        stored = block[148:156].rstrip(b"\0 ").strip()
        try:
            want = int(stored or b"x", 8)
        except ValueError:
            raise InvalidDocument(
                f"{self.what}: not a tar archive (no valid header at offset {start})"
            ) from None
        actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if want != actual:
            raise InvalidDocument(
                f"{self.what}: not a tar archive (bad header checksum at offset {start})"
            )
        raw_size = block[124:136]
        if raw_size[0] & 0x80:
            size = int.from_bytes(raw_size[1:], "big")
        else:
            text = raw_size.rstrip(b"\0 ").strip()
            size = int(text, 8) if text else 0
        if block[156] in _NO_DATA_TYPES:
            size = 0
        self._skip = -(-size // _BLOCK) * _BLOCK
        self.entries += 1

    def finish(self) -> None:
        if self._header or self._skip:
            raise InvalidDocument(
                f"{self.what}: truncated tar archive (ends inside an entry at offset {self.offset})"
            )
        if not self.entries:
            raise InvalidDocument(f"{self.what}: empty tar archive")


def _json_array(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


def _pairs(args: str, instruction: str) -> list[tuple[str, str]]:
    """`K=V K2="V 2"` or the legacy `K V with spaces` form of ENV and LABEL."""
    try:
        words = shlex.split(args)
    except ValueError as err:
        raise InvalidArgument(f"--change {instruction} {args}: {err}") from None
    if not words:
        raise InvalidArgument(f"--change {instruction}: needs at least one argument")
    if "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        if not value.strip():
            raise InvalidArgument(f"--change {instruction} {args}: expected KEY=VALUE")
        return [(key, value.strip())]
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--change {instruction} {args}: {word!r} is not KEY=VALUE")
        out.append((key, value))
    return out


def _ports(args: str) -> list[str]:
    out: list[str] = []
    for word in args.split():
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"--change EXPOSE {word}: unknown protocol {proto!r}")
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", port)
        if m is None:
            raise InvalidArgument(f"--change EXPOSE {word}: not a port or port range")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if not 0 < lo <= hi <= 65535:
            raise InvalidArgument(f"--change EXPOSE {word}: port out of range")
        out.extend(f"{p}/{proto}" for p in range(lo, hi + 1))
    if not out:
        raise InvalidArgument("--change EXPOSE: needs at least one port")
    return out


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """Apply Dockerfile-style `--change` instructions to an image config's `config` object."""
    for change in changes:
        text = change.strip()
        instruction, _, args = text.partition(" ")
        if not _:
            instruction, _, args = text.partition("\t")
        name = instruction.upper()
        args = args.strip()
        if name not in CHANGE_INSTRUCTIONS:
            raise InvalidArgument(
                f"--change {instruction or change!r}: unsupported instruction; "
                f"use one of {', '.join(CHANGE_INSTRUCTIONS)}"
            )
        if not args:
            raise InvalidArgument(f"--change {name}: needs an argument")
        if name in ("CMD", "ENTRYPOINT"):
            argv = _json_array(args)
            config["Cmd" if name == "CMD" else "Entrypoint"] = (
                argv if argv is not None else ["/bin/sh", "-c", args]
            )
        elif name == "ENV":
            env = list(config.get("Env") or [])
            for key, value in _pairs(args, name):
                keys = [e.partition("=")[0] for e in env]
                if key in keys:
                    env[keys.index(key)] = f"{key}={value}"  # in place, as docker does
                else:
                    env.append(f"{key}={value}")
            config["Env"] = env
        elif name == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(args, name))
            config["Labels"] = labels
        elif name == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            ports.update({p: {} for p in _ports(args)})
            config["ExposedPorts"] = ports
        elif name == "VOLUME":
            paths = _json_array(args)
            if paths is None:
                paths = args.split()
            volumes = dict(config.get("Volumes") or {})
            volumes.update({p: {} for p in paths})
            config["Volumes"] = volumes
        elif name == "USER":
            config["User"] = args
        elif name == "WORKDIR":
            base = config.get("WorkingDir") or "/"
            config["WorkingDir"] = os.path.normpath(os.path.join(base, args))
        elif name == "STOPSIGNAL":
            if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|\d+", args):
                raise InvalidArgument(f"--change STOPSIGNAL {args}: not a signal")
            config["StopSignal"] = args
    return config


def _host_arch() -> str:
    machine = _platform.machine()
    return _GOARCH.get(machine, machine)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ImportSource:
    """ImageSource of the one-layer image made from a rootfs tarball (path or `-`)."""

    def __init__(
        self,
        tarball: str | os.PathLike[str],
        changes: Sequence[str] = (),
        message: str | None = None,
        tmpdir: str | None = None,
        created: str | None = None,
        platform: str | None = None,
    ) -> None:
        self.what = os.fspath(tarball)
        container_config = apply_changes({}, changes)  # bad input fails before reading
        os_name, arch, variant = "linux", _host_arch(), None
        if platform:
            from portside.oci.platform import parse_platform

            wanted = parse_platform(platform)
            os_name, arch, variant = wanted.os, wanted.architecture, wanted.variant
        fd, self._layer_path = tempfile.mkstemp(prefix=".portside-import-", dir=tmpdir)
        try:
            with os.fdopen(fd, "wb") as out:
                if self.what == "-":
                    self._build(sys.stdin.buffer, out)
                else:
                    try:
                        f = open(self.what, "rb")  # noqa: SIM115 - closed below
                    except FileNotFoundError:
                        raise NotFound(f"{self.what}: no such file") from None
                    except IsADirectoryError:
                        raise InvalidArgument(f"{self.what}: is a directory") from None
                    with f:
                        self._build(f, out)
        except BaseException:
            self.close()
            raise
        created = created or _now()
        history: dict[str, Any] = {"created": created, "created_by": "portside import"}
        history["comment"] = message if message else f"Imported from {self.what}"
        config: dict[str, Any] = {
            "created": created,
            "architecture": arch,
            "os": os_name,
            **({"variant": variant} if variant else {}),
            "config": container_config,
            "rootfs": {"type": "layers", "diff_ids": [str(self.diff_id)]},
            "history": [history],
        }
        self.config = json.dumps(config, separators=(",", ":")).encode()
        self.config_digest = Digest.from_bytes(self.config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": str(self.config_digest),
                "size": len(self.config),
            },
            "layers": [
                {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(self.layer_digest),
                    "size": self.layer_size,
                }
            ],
        }
        self.manifest = json.dumps(manifest, separators=(",", ":")).encode()

    def _build(self, raw: BinaryIO, out: BinaryIO) -> None:
        buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        head = buffered.peek(8)[:8]
        if not head:
            raise InvalidDocument(f"{self.what}: empty file")
        stream = open_decompressed(buffered, detect_compression(head))
        checker = TarChecker(self.what)
        diff = DigestVerifier()

        def plain() -> Iterator[bytes]:
            try:
                while data := stream.read(CHUNK):
                    checker.feed(data)
                    diff.update(data)
                    yield data
            except (OSError, EOFError) as err:
                raise InvalidDocument(f"{self.what}: cannot decompress: {err}") from None
            checker.finish()

        compressed = DigestVerifier()
        for chunk in compress_gzip(plain()):
            compressed.update(chunk)
            out.write(chunk)
        self.diff_id = diff.digest()
        self.layer_digest = compressed.digest()
        self.layer_size = compressed.size

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest is not None and instance_digest != Digest.from_bytes(self.manifest):
            raise NotFound(f"imported image has no manifest {instance_digest}")
        return self.manifest, mt.OCI_MANIFEST

    def get_blob(self, blob: BlobInfo) -> Iterator[bytes]:
        if blob.digest == self.config_digest:
            return iter([self.config])
        if blob.digest == self.layer_digest:
            return self._layer_chunks()
        raise NotFound(f"imported image has no blob {blob.digest}")

    def _layer_chunks(self) -> Iterator[bytes]:
        with open(self._layer_path, "rb") as f:
            while data := f.read(CHUNK):
                yield data

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._layer_path)
