"""Push: copy a stored image to a registry repository."""

from __future__ import annotations

from portside.errors import InvalidArgument
from portside.images.copy import CopyOptions, CopyResult, copy
from portside.images.store import ImageStore
from portside.images.transports.local import LocalSource
from portside.images.transports.registry import RegistryDestination
from portside.oci.reference import parse_reference, split_domain
from portside.registry.resolver import Resolver

__all__ = ["push_image"]


def push_image(
    store: ImageStore,
    text: str,
    destination: str | None,
    resolver: Resolver,
    options: CopyOptions | None = None,
    chunk_size: int | None = None,
    all_platforms: bool = False,
) -> CopyResult:
    """Push the image `text` to `destination` (default: its own name); with
    `all_platforms`, the whole index it was pulled through (every platform stored)."""
    options = options or CopyOptions()
    image = store.get(text)
    index = None
    if all_platforms:
        from portside.images.store import normalize_name_safe

        index = image.index_digests.get(normalize_name_safe(text))
        if index is None and image.index_digests:
            index = next(iter(image.index_digests.values()))
        if index is None:
            raise InvalidArgument(f"{text} was not pulled through an index: push it without --all")
        options.all_platforms = True
    target = destination or text
    if target.startswith("docker://"):
        target = target[len("docker://") :]
    ref = parse_reference(target)
    if ref.tag is None and ref.digest is None:
        ref = ref.with_tag("latest")
    ep = resolver.endpoints(ref, for_push=True)[-1]
    client = resolver.client(ep.domain, ep.insecure)
    # Other repositories of the same registry that hold this image's blobs can lend them.
    mount_from = []
    for name in [*image.names, *(d.split("@", 1)[0] for d in image.digests)]:
        domain, repo = split_domain(parse_reference(name).name)
        if domain == ep.domain and repo != ep.repo and repo not in mount_from:
            mount_from.append(repo.rsplit(":", 1)[0])
    dest = RegistryDestination(
        client, ep.repo, ref.tag, mount_from=mount_from, chunk_size=chunk_size
    )
    source = LocalSource(store, image, index)
    try:
        result = copy(source, dest, options)
    finally:
        dest.close()
    if result.manifest_digest == image.manifest_digest:
        store.add_digest(ref.name, result.digest, image.manifest_digest)
    return result
