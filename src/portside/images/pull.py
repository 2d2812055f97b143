"""Pull: resolve a name through registries.conf, then copy registry -> local store."""

from __future__ import annotations

from portside.errors import NotFound, PortsideError, RegistryError
from portside.images.copy import CopyOptions, CopyResult, copy
from portside.images.store import ImageRecord, ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.registry import RegistrySource
from portside.registry.resolver import Resolver

__all__ = ["pull_image"]


def pull_image(
    store: ImageStore,
    text: str,
    resolver: Resolver,
    options: CopyOptions | None = None,
) -> tuple[ImageRecord, CopyResult]:
    """Pull `text`; tries each candidate name and mirror until one has the manifest."""
    options = options or CopyOptions()
    failures: list[PortsideError] = []
    for ref in resolver.candidates(text):
        for ep in resolver.endpoints(ref):
            client = resolver.client(ep.domain, ep.insecure)
            source = RegistrySource(client, ep.repo, ref.tag_or_digest or "latest")
            try:
                source.get_manifest(None)  # find out whether this endpoint has it
            except (NotFound, RegistryError) as err:
                failures.append(err)
                continue
            dest = LocalDestination(
                store, names=[str(ref)] if ref.tag else [], repo_digest_repos=[ref.name]
            )
            try:
                result = copy(source, dest, options)
            finally:
                dest.close()
            assert dest.image is not None
            return dest.image, result
    if len(failures) == 1:
        raise failures[0]
    if failures and all(isinstance(f, type(failures[0])) for f in failures):
        raise type(failures[0])(
            f"{text}: not found in any of the searched registries: "
            + "; ".join(str(f) for f in failures)
        )
    raise NotFound(f"{text}: " + "; ".join(str(f) for f in failures))
