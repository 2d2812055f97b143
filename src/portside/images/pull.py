"""Pull: resolve a name through registries.conf, then copy registry -> local store."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from portside.errors import InvalidArgument, NotFound, PortsideError, RegistryError
from portside.images.copy import Blob, CopyOptions, CopyResult, copy
from portside.images.store import ImageRecord, ImageStore
from portside.images.transports.local import LocalDestination
from portside.images.transports.registry import RegistrySource
from portside.registry.resolver import Resolver

if TYPE_CHECKING:
    from portside.storage.layers import LayerStore

__all__ = ["ensure_image", "pull_image", "unpack_image"]


class _Unpacker:
    """Unpacks each layer as soon as its blob is verified in the content store, while
    the other blobs still download. overlay layers are independent dirs, so any order
    works; vfs layers build on their parent, so they wait for the end (`finish`).
    Only verified blobs are unpacked: a corrupt download never becomes a layer."""

    def __init__(self, store: ImageStore, layers: LayerStore, parallel: int = 2) -> None:
        self.store = store
        self.layers = layers
        self.streaming = layers.driver_name == "overlay"
        self._lock = threading.Lock()
        self._diff_ids: dict[str, list[str]] = {}  # config digest -> diff IDs
        self._waiting: dict[str, list[tuple[int, Blob]]] = {}  # layers before their config
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="unpack")
        self._futures: list[Future[None]] = []
        self.created: list[str] = []  # chain IDs this pull made, in order

    def on_blob(self, config: str, position: int, blob: Blob) -> None:
        if not self.streaming:
            return
        with self._lock:
            if position < 0:
                raw = self.store.content.read_bytes(blob.digest)
                try:
                    diff_ids = json.loads(raw)["rootfs"]["diff_ids"]
                except (ValueError, KeyError, TypeError):
                    return  # finish() reports a bad config through the image store
                if not isinstance(diff_ids, list):
                    return
                self._diff_ids[config] = [str(d) for d in diff_ids]
                jobs = self._waiting.pop(config, [])
            else:
                if config not in self._diff_ids:
                    self._waiting.setdefault(config, []).append((position, blob))
                    return
                jobs = [(position, blob)]
            diff_ids = self._diff_ids[config]
            for pos, layer in jobs:
                if pos < len(diff_ids):
                    self._futures.append(self._pool.submit(self._unpack, diff_ids, pos, layer))

    def _unpack(self, diff_ids: list[str], position: int, blob: Blob) -> None:
        from portside.storage.apply import MissingLinkTarget
        from portside.storage.layers import chain_of

        parent = str(chain_of(diff_ids[:position])) if position else None
        chain = str(chain_of(diff_ids[: position + 1]))
        if self.layers.get(chain) is not None:
            return
        with contextlib.suppress(MissingLinkTarget):  # finish() retries it over its lowers
            self.layers.unpack(
                diff_ids[position], self.store.content.blob_path(blob.digest), parent=parent
            )
            with self._lock:
                self.created.append(chain)

    def finish(self, record: ImageRecord) -> None:
        """Wait for the unpacks started early, then unpack whatever is still missing."""
        self._drain()
        before = {str(layer.chain_id) for layer in self.layers.layers()}
        unpack_image(self.store, self.layers, record)
        made = [str(x.chain_id) for x in self.layers.layers() if str(x.chain_id) not in before]
        self.created.extend(made)

    def _drain(self) -> None:
        self._pool.shutdown(wait=True)
        for fut in self._futures:
            fut.result()

    def abort(self) -> None:
        """A failed pull: wait for running unpacks, then remove the layers it made
        (those still held by something else stay)."""
        for fut in self._futures:
            fut.cancel()
        self._pool.shutdown(wait=True)
        for chain in reversed(self.created):
            with contextlib.suppress(PortsideError, OSError):
                self.layers.remove_layer(chain)


def unpack_image(store: ImageStore, layers: LayerStore, record: ImageRecord) -> str:
    """Unpack an image's layers from the content store (those not unpacked yet);
    returns the top chain ID, the key `run` looks for."""
    from portside.storage.layers import chain_of

    cfg = store.config(record)
    diff_ids = [str(d) for d in (cfg.get("rootfs") or {}).get("diff_ids") or []]
    if not diff_ids:
        raise InvalidArgument(f"image {record.short_id} has no layers")
    chains = [str(chain_of(diff_ids[: i + 1])) for i in range(len(diff_ids))]
    # every layer, not just the top: early unpacks may have made a child before its parent
    if any(layers.get(c) is None for c in chains):
        descs = store.layers(record)
        if len(descs) != len(diff_ids):
            raise InvalidArgument(f"image {record.short_id}: layers and diff IDs differ in number")
        layers.unpack_chain(
            [
                (d, store.content.blob_path(desc["digest"]))
                for d, desc in zip(diff_ids, descs, strict=True)
            ]
        )
    return chains[-1]


def pull_image(
    store: ImageStore,
    text: str,
    resolver: Resolver,
    options: CopyOptions | None = None,
    layers: LayerStore | None = None,
) -> tuple[ImageRecord, CopyResult]:
    """Pull `text`; tries each candidate name and mirror until one has the manifest.
    With `layers`, its layers are unpacked there too, each as soon as its blob is in."""
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
            unpacker = None
            if layers is not None:
                unpacker = _Unpacker(store, layers)
                options = replace(options, on_blob=unpacker.on_blob)
            try:
                result = copy(source, dest, options)
                assert dest.image is not None
                if unpacker is not None:
                    unpacker.finish(dest.image)
            except BaseException:
                if unpacker is not None:
                    unpacker.abort()
                raise
            finally:
                dest.close()
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
