"""From what the user typed to registry endpoints: short names, aliases, mirrors, blocks.

registries.conf decides where a name is looked up (aliases, then the
unqualified-search registries), where it is actually fetched from (a prefix
rewritten to a location, mirrors first for pulls) and whether plain HTTP or an
unverified TLS connection is allowed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from portside.config import RegistriesConf, load_registries_conf, lookup_credentials
from portside.errors import InvalidReference, RegistryError
from portside.oci.reference import Reference, parse_reference, split_domain
from portside.registry.client import RegistryClient

__all__ = ["Endpoint", "Resolver", "is_loopback_host"]


def is_loopback_host(domain: str) -> bool:
    host = domain
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """Where to fetch `ref` from: `domain/repo` on a (mirror) registry."""

    ref: Reference  # the name the image is known by
    domain: str  # registry actually contacted
    repo: str  # repository path on that registry
    insecure: bool = False
    mirror: bool = False


class Resolver:
    """Builds clients for references, honouring registries.conf and CLI flags."""

    def __init__(
        self,
        conf: RegistriesConf | None = None,
        *,
        tls_verify: bool | None = None,
        credentials: tuple[str, str] | None = None,
        max_connections: int = 8,
    ) -> None:
        self.conf = conf if conf is not None else load_registries_conf()
        self.tls_verify = tls_verify
        self.credentials = credentials
        self.max_connections = max_connections
        self._clients: dict[str, RegistryClient] = {}

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    # -- names ---------------------------------------------------------------------------
    def candidates(self, text: str) -> list[Reference]:
        """The fully qualified references a user-typed name may mean, in lookup order."""
        raw = parse_reference(text, normalize=False)
        if raw.domain:
            return [parse_reference(text)]
        alias = self.conf.aliases.get(raw.path)
        if alias:
            aliased = parse_reference(alias)
            tagged = replace(aliased, tag=raw.tag or aliased.tag, digest=raw.digest)
            if tagged.tag is None and tagged.digest is None:
                tagged = replace(tagged, tag="latest")
            return [tagged]
        search = self.conf.unqualified_search or ["docker.io"]
        out = []
        for domain in search:
            ref = parse_reference(f"{domain}/{text}")
            out.append(ref)
        return out

    def qualify(self, text: str) -> Reference:
        """One reference for a push or a local lookup: the first candidate."""
        return self.candidates(text)[0]

    # -- endpoints -----------------------------------------------------------------------
    def endpoints(self, ref: Reference, for_push: bool = False) -> list[Endpoint]:
        entry = self.conf.find(ref.name)
        if entry is not None and entry.blocked:
            raise RegistryError(f"registry {ref.domain} is blocked in registries.conf ({ref})")
        if entry is None:
            return [Endpoint(ref, ref.domain, ref.path)]
        rewritten = entry.location + ref.name[len(entry.prefix) :]
        domain, repo = split_domain(rewritten)
        if not domain:
            raise InvalidReference(f"registries.conf location {entry.location!r} has no host")
        out: list[Endpoint] = []
        if not for_push:
            for m in entry.mirrors:
                md, mrepo = split_domain(m.location + ref.name[len(entry.prefix) :])
                if md:
                    out.append(Endpoint(ref, md, mrepo, insecure=m.insecure, mirror=True))
        out.append(Endpoint(ref, domain, repo, insecure=entry.insecure))
        return out

    def client(self, domain: str, insecure: bool = False) -> RegistryClient:
        """A shared client for `domain`: plain HTTP for loopback, TLS otherwise."""
        if domain in self._clients:
            return self._clients[domain]
        loopback = is_loopback_host(domain)
        verify = self.tls_verify if self.tls_verify is not None else not insecure
        creds = self.credentials or lookup_credentials(domain)
        client = RegistryClient(
            domain,
            credentials=creds,
            tls_verify=verify,
            plain_http=loopback and self.tls_verify is not True,
            max_connections=self.max_connections,
        )
        self._clients[domain] = client
        return client
