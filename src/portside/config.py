"""Where state lives, and the files users already have: registries.conf and auth files.

Read as podman and skopeo read them, so a machine set up for those tools works
with portside unchanged (and `portside login` is seen by `podman pull`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portside.errors import ConfigError, InvalidArgument

DEFAULT_ROOT = "/var/lib/portside"
DEFAULT_RUNROOT = "/run/portside"
DEFAULT_CONFIG = "/etc/portside/portside.toml"
REGISTRIES_CONF = "/etc/containers/registries.conf"
REGISTRIES_CONF_D = "/etc/containers/registries.conf.d"


@dataclass(frozen=True)
class Paths:
    root: Path
    runroot: Path

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def database(self) -> Path:
        return self.root / "portside.db"


def paths(root: str | os.PathLike[str] | None = None, runroot: str | None = None) -> Paths:
    """--root/--runroot win, then PORTSIDE_ROOT/PORTSIDE_RUNROOT, then the defaults."""
    r = root or os.environ.get("PORTSIDE_ROOT") or DEFAULT_ROOT
    rr = runroot or os.environ.get("PORTSIDE_RUNROOT") or DEFAULT_RUNROOT
    return Paths(Path(r), Path(rr))


# -- registries.conf (v2) ------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()


@dataclass
class RegistriesConf:
    unqualified_search: list[str] = field(default_factory=list)
    registries: list[RegistryEntry] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    short_name_mode: str = "permissive"

    def find(self, name: str) -> RegistryEntry | None:
        """The entry with the longest prefix matching `name` (domain/path), as podman."""
        best: RegistryEntry | None = None
        for entry in self.registries:
            p = entry.prefix
            if p.startswith("*."):
                host = name.split("/", 1)[0]
                if not host.endswith(p[1:]):
                    continue
            elif not (name == p or name.startswith(p + "/") or name.startswith(p + ":")):
                continue
            if best is None or len(p) > len(best.prefix):
                best = entry
        return best


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what}: expected true or false, got {value!r}")
    return value


def parse_registries_conf(text: str, origin: str = "registries.conf") -> RegistriesConf:
    import tomllib  # lazily: compiling its regexes costs more than most pulls of a cached image

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{origin}: {err}") from None
    conf = RegistriesConf()
    merge_registries_conf(conf, doc, origin)
    return conf


def merge_registries_conf(conf: RegistriesConf, doc: dict[str, Any], origin: str) -> None:
    if "registries" in doc and isinstance(doc["registries"], dict):
        raise ConfigError(f"{origin}: registries.conf v1 format is not supported; use v2")
    search = doc.get("unqualified-search-registries")
    if search is not None:
        if not isinstance(search, list) or not all(isinstance(s, str) for s in search):
            raise ConfigError(f"{origin}: unqualified-search-registries must be a list of strings")
        conf.unqualified_search = list(search)
    mode = doc.get("short-name-mode")
    if isinstance(mode, str):
        conf.short_name_mode = mode
    for i, item in enumerate(doc.get("registry", []) or []):
        what = f"{origin}: [[registry]] #{i + 1}"
        if not isinstance(item, dict):
            raise ConfigError(f"{what}: not a table")
        prefix = item.get("prefix") or item.get("location")
        location = item.get("location") or prefix
        if not isinstance(prefix, str) or not prefix:
            raise ConfigError(f"{what}: needs prefix or location")
        mirrors = []
        for m in item.get("mirror", []) or []:
            if not isinstance(m, dict) or not isinstance(m.get("location"), str):
                raise ConfigError(f"{what}: mirror needs a location")
            mirrors.append(
                Mirror(m["location"], _bool(m.get("insecure", False), f"{what} mirror insecure"))
            )
        entry = RegistryEntry(
            prefix=prefix,
            location=str(location),
            insecure=_bool(item.get("insecure", False), f"{what} insecure"),
            blocked=_bool(item.get("blocked", False), f"{what} blocked"),
            mirrors=tuple(mirrors),
        )
        conf.registries = [r for r in conf.registries if r.prefix != prefix] + [entry]
    aliases = doc.get("aliases", {}) or {}
    if not isinstance(aliases, dict):
        raise ConfigError(f"{origin}: [aliases] must be a table")
    for k, v in aliases.items():
        if not isinstance(v, str):
            raise ConfigError(f"{origin}: alias {k!r} must be a string")
        conf.aliases[k] = v


def load_registries_conf(path: str | None = None) -> RegistriesConf:
    """registries.conf from $CONTAINERS_REGISTRIES_CONF, `path`, or /etc (plus .conf.d)."""
    conf = RegistriesConf()
    main = path or os.environ.get("CONTAINERS_REGISTRIES_CONF") or REGISTRIES_CONF
    files = [Path(main)]
    if path is None and "CONTAINERS_REGISTRIES_CONF" not in os.environ:
        d = Path(REGISTRIES_CONF_D)
        if d.is_dir():
            files += sorted(d.glob("*.conf"))
    for f in files:
        try:
            text = f.read_text()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ConfigError(f"{f}: {err.strerror}") from None
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{f}: {err}") from None
        merge_registries_conf(conf, doc, str(f))
    return conf


# -- auth files ------------------------------------------------------------------------------


def auth_file_path() -> Path:
    """The file login writes: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
    or /run/containers/<uid>/auth.json (podman's choice)."""
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.getuid()}/auth.json")


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def auth_files() -> list[Path]:
    """Files searched for credentials, first match wins."""
    return [auth_file_path(), docker_config_path()]


def _auth_key_matches(key: str, registry: str) -> bool:
    k = key
    for scheme in ("https://", "http://"):
        if k.startswith(scheme):
            k = k[len(scheme) :]
    k = k.rstrip("/")
    if k.endswith("/v1") or k.endswith("/v2"):
        k = k[:-3]
    if registry == "docker.io" and k in ("index.docker.io", "registry-1.docker.io"):
        return True
    return k == registry


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read credentials: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return doc


def decode_auth(value: str, origin: str) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(value).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{origin}: invalid auth entry") from None
    if not sep:
        raise ConfigError(f"{origin}: invalid auth entry (no user:password)")
    return user, password


def lookup_credentials(registry: str, repository: str = "") -> tuple[str, str] | None:
    """(user, password) for `registry` (a `repo`-scoped key `host/path` wins), or None."""
    for path in auth_files():
        auths = _read_json(path).get("auths", {})
        if not isinstance(auths, dict):
            continue
        candidates = []
        if repository:
            parts = repository.split("/")
            candidates = ["/".join([registry, *parts[:i]]) for i in range(len(parts), 0, -1)]
        for key in [*candidates, registry]:
            for k, entry in auths.items():
                if (k == key or _auth_key_matches(k, key)) and isinstance(entry, dict):
                    if entry.get("auth"):
                        return decode_auth(entry["auth"], str(path))
                    if entry.get("username") is not None:
                        return str(entry["username"]), str(entry.get("password", ""))
    return None


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
    os.rename(tmp, path)


def store_credentials(registry: str, user: str, password: str) -> Path:
    """Write `registry` into the auth file login uses, keeping everything else in it."""
    if not user:
        raise InvalidArgument("login: username is empty")
    path = auth_file_path()
    doc = _read_json(path)
    auths = doc.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: 'auths' is not an object")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    auths[registry] = {"auth": token}
    _write_json_atomic(path, doc)
    return path


def remove_credentials(registry: str | None) -> list[str]:
    """Remove `registry` (or all, with None) from the login auth file; returns the keys removed."""
    path = auth_file_path()
    doc = _read_json(path)
    auths = doc.get("auths", {})
    if not isinstance(auths, dict):
        return []
    if registry is None:
        removed = list(auths)
    else:
        removed = [k for k in auths if k == registry or _auth_key_matches(k, registry)]
    for k in removed:
        del auths[k]
    if removed:
        with contextlib.suppress(FileNotFoundError):
            _write_json_atomic(path, doc)
    return removed


def parse_creds(text: str) -> tuple[str, str]:
    """`--creds USER[:PASS]` as podman takes it."""
    user, _, password = text.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --creds {text!r}: expected USER:PASSWORD")
    return user, password
