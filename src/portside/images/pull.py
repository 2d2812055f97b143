"""Pull: resolve a name through registries.conf, then copy registry -> local store."""

from __future__ import annotations

from portside.errors import InvalidArgument, NotFound, PortsideError, RegistryError
from portside.images.copy import CopyOptions, CopyResult, copy
from portside.images.store import ImageRecord, ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.registry import RegistrySource
from portside.registry.resolver import Resolver

__all__ = ["ensure_image", "pull_image"]


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


def ensure_image(
    store: ImageStore,
    text: str,
    policy: str = "missing",
    resolver: Resolver | None = None,
    options: CopyOptions | None = None,
) -> ImageRecord:
    """The image `run`/`create` use: pulled first if absent ("missing"), every time
    ("always"), or never ("never": absent is NotFound), as `--pull` means in podman."""
    if policy not in ("missing", "always", "never", "newer"):
        raise InvalidArgument(f"invalid pull policy {policy!r} (missing, always, never)")
    if policy != "always":
        found = store.lookup(text)
        if found is not None:
            return found
        if policy == "never":
            raise NotFound(f"image not known: {text} (and --pull=never)")
    own = resolver is None
    resolver = resolver or Resolver()
    try:
        return pull_image(store, text, resolver, options)[0]
    finally:
        if own:
            resolver.close()
