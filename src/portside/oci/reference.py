"""Image references (`[domain/]path[:tag][@digest]`) per the distribution reference grammar.

Parsing normalises the docker way by default (`busybox` is
`docker.io/library/busybox:latest`) so that every layer above compares references
in one canonical form; `familiar()` gives the short form back for display.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from portside.errors import InvalidDigest, InvalidReference
from portside.oci.digest import Digest

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_MAX",
    "Reference",
    "parse_reference",
    "split_domain",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"

PATH_RE = re.compile(_PATH, re.ASCII)
DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
TAG_RE = re.compile(_TAG, re.ASCII)
_HEX64_RE = re.compile(r"[a-f0-9]{64}")


def _fail(text: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid reference {text!r}: {why}")


def _looks_like_domain(component: str) -> bool:
    """The docker rule: a first component is a host if it has `.` or `:` or is localhost."""
    return "." in component or ":" in component or component == "localhost"


def split_domain(name: str) -> tuple[str, str]:
    """Split `name` into (domain, path) with the docker rule; domain is "" if none is written."""
    first, slash, rest = name.partition("/")
    if slash and _looks_like_domain(first):
        return first, rest
    return "", name


@dataclass(frozen=True)
class Reference:
    """A parsed image reference; `domain` is "" only for non-normalised references."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """`domain/path`: the repository's full name, without tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        return self.name

    @property
    def host(self) -> str:
        """The domain without its port (IPv6 without brackets)."""
        domain = self.domain
        if domain.startswith("["):
            return domain[1 : domain.index("]")]
        return domain.rsplit(":", 1)[0] if ":" in domain else domain

    @property
    def port(self) -> int | None:
        domain = self.domain
        if domain.startswith("["):
            rest = domain[domain.index("]") + 1 :]
            return int(rest[1:]) if rest.startswith(":") else None
        return int(domain.rsplit(":", 1)[1]) if ":" in domain else None

    @property
    def is_loopback(self) -> bool:
        """True for localhost, 127.0.0.0/8 and ::1: registries there may use plain HTTP."""
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def tag_or_digest(self) -> str | None:
        """What to ask a registry's manifests endpoint for: the digest wins over the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def familiar_name(self) -> str:
        """The name as docker prints it: no `docker.io/`, no `library/`."""
        if self.domain in (DEFAULT_DOMAIN, ""):
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
                return path[len(OFFICIAL_PREFIX) :]
            return path
        return self.name

    def familiar(self) -> str:
        """The docker-style short form, e.g. `busybox:latest`."""
        out = self.familiar_name()
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> Reference:
        """The same repository with `tag` (the digest, if any, is kept as docker does)."""
        if TAG_RE.fullmatch(tag) is None:
            raise _fail(f"{self.name}:{tag}", f"invalid tag {tag!r}")
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | str) -> Reference:
        try:
            d = Digest.parse(digest)
        except InvalidDigest as e:
            raise _fail(f"{self.name}@{digest}", str(e)) from None
        return replace(self, digest=d)

    def without_digest(self) -> Reference:
        return replace(self, digest=None)

    def name_only(self) -> Reference:
        """The bare repository: no tag, no digest."""
        return replace(self, tag=None, digest=None)


def parse_reference(text: str, *, normalize: bool = True) -> Reference:
    """Parse `text`; with `normalize`, fill in docker.io, library/ and :latest like docker."""
    if not isinstance(text, str):
        raise InvalidReference(f"invalid reference {text!r}: not a string")
    if not text:
        raise InvalidReference("invalid reference '': empty")
    if text != text.strip():
        raise _fail(text, "contains whitespace")

    remainder = text
    digest: Digest | None = None
    if "@" in remainder:
        remainder, _, digest_text = remainder.partition("@")
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest as e:
            raise _fail(text, str(e).removeprefix("invalid digest ")) from None

    tag: str | None = None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if TAG_RE.fullmatch(tag) is None:
            raise _fail(text, f"invalid tag {tag!r} (want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")

    if not remainder:
        raise _fail(text, "missing repository name")

    domain, path = split_domain(remainder)
    if domain and DOMAIN_RE.fullmatch(domain) is None:
        raise _fail(text, f"invalid registry host {domain!r}")
    if not path:
        raise _fail(text, "missing repository path after the registry host")
    if PATH_RE.fullmatch(path) is None:
        if path != path.lower() and PATH_RE.fullmatch(path.lower()) is not None:
            raise _fail(text, "repository name must be lowercase")
        raise _fail(
            text,
            "invalid repository name (lowercase letters, digits and . _ __ - separators, "
            "components split by /)",
        )

    if normalize:
        if not domain or domain == LEGACY_DEFAULT_DOMAIN:
            domain = DEFAULT_DOMAIN
        if domain == DEFAULT_DOMAIN and "/" not in path:
            if _HEX64_RE.fullmatch(text):
                raise _fail(text, "a 64-character hex string is an ID, not a repository name")
            path = OFFICIAL_PREFIX + path
        if tag is None and digest is None:
            tag = DEFAULT_TAG

    ref = Reference(domain=domain, path=path, tag=tag, digest=digest)
    if len(ref.name) > NAME_MAX:
        raise _fail(text, f"repository name longer than {NAME_MAX} characters")
    return ref
