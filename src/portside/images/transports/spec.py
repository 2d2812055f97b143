"""Transport-qualified image names (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
`docker-archive:FILE[:REF]`), as skopeo and podman accept them.

Lets pull, push and copy-like verbs take a file or directory wherever they take an
image name, without each of them knowing the archive transports.
"""

from __future__ import annotations

from portside.errors import InvalidArgument
from portside.images.transport import ImageDestination, ImageSource

__all__ = ["ARCHIVE_TRANSPORTS", "is_archive_spec", "open_destination", "open_source"]

ARCHIVE_TRANSPORTS = ("oci", "oci-archive", "docker-archive")


def _split(text: str) -> tuple[str, str]:
    transport, sep, rest = text.partition(":")
    if not sep or transport not in ARCHIVE_TRANSPORTS:
        known = ", ".join(t + ":" for t in ARCHIVE_TRANSPORTS)
        raise InvalidArgument(f"{text}: not an archive image name (use {known})")
    return transport, rest


def is_archive_spec(text: str) -> bool:
    transport, sep, _ = text.partition(":")
    return bool(sep) and transport in ARCHIVE_TRANSPORTS


def open_source(text: str) -> ImageSource:
    """An ImageSource for `oci:...`, `oci-archive:...` or `docker-archive:...`."""
    transport, rest = _split(text)
    if transport == "oci":
        from portside.images.transports.oci_layout import OciLayoutSource, parse_oci_spec

        path, ref = parse_oci_spec(rest)
        return OciLayoutSource.from_dir(path, ref)
    if transport == "oci-archive":
        from portside.images.transports.oci_archive import OciArchiveSource
        from portside.images.transports.oci_layout import parse_oci_spec

        path, ref = parse_oci_spec(rest)
        return OciArchiveSource(path, ref)
    from portside.images.transports.docker_archive import (
        DockerArchiveSource,
        parse_docker_archive_spec,
    )

    path, ref = parse_docker_archive_spec(rest)
    return DockerArchiveSource(path, ref)


def open_destination(text: str, default_ref: str | None = None) -> ImageDestination:
    """An ImageDestination for an archive name; `default_ref` names the image when the
    text does not (a ref name for OCI, a RepoTag for docker-archive)."""
    transport, rest = _split(text)
    if transport in ("oci", "oci-archive"):
        from portside.images.transports.oci_layout import parse_oci_spec

        path, ref = parse_oci_spec(rest)
        ref = ref or default_ref
        if transport == "oci":
            from portside.images.transports.oci_layout import OciLayoutDestination

            return OciLayoutDestination(path, ref)
        from portside.images.transports.oci_archive import OciArchiveDestination

        return OciArchiveDestination(path, ref)
    from portside.images.transports.docker_archive import (
        DockerArchiveDestination,
        parse_docker_archive_spec,
    )

    path, ref = parse_docker_archive_spec(rest)
    ref = ref or default_ref
    return DockerArchiveDestination(path, [ref] if ref else [])
