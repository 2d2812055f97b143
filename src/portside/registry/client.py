"""HTTP client of one registry per the OCI distribution spec.

Every request goes through `_send`, which adds auth (answering a 401 once),
retries connection errors and 5xx answers with backoff for idempotent
requests, and turns error bodies into one line. Blob downloads resume with a
Range request after a dropped connection.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from portside.errors import (
    NotFound,
    RegistryError,
    Unauthorized,
    UnsupportedMediaType,
)
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.registry.auth import Authenticator

__all__ = ["RegistryClient", "endpoint_host"]

MANIFEST_ACCEPT = ", ".join(
    [mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST]
    + [f"{t};q=0.5" for t in (mt.DOCKER_SCHEMA1_SIGNED, mt.DOCKER_SCHEMA1_MANIFEST)]
)
RETRIES = 5
CHUNK = 1 << 20


def endpoint_host(domain: str) -> str:
    """docker.io is served from registry-1.docker.io."""
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def _error_line(r: httpx.Response) -> str:
    """`CODE: message` from a distribution error body, or the status line."""
    try:
        doc = r.json()
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if errs:
            e = errs[0]
            msg = str(e.get("message", "")).strip()
            code = str(e.get("code", "")).strip()
            return f"{code}: {msg}" if code and msg else code or msg
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        pass
    return f"HTTP {r.status_code} {r.reason_phrase}"


def _backoff(attempt: int) -> None:
    time.sleep(min(0.2 * (2**attempt), 3.0) * (0.5 + random.random() / 2))


class RegistryClient:
    """Talks to one registry endpoint (`host[:port]`); safe to share between threads."""

    def __init__(
        self,
        host: str,
        *,
        credentials: tuple[str, str] | None = None,
        tls_verify: bool = True,
        plain_http: bool = False,
        max_connections: int = 8,
        timeout: float = 60.0,
    ) -> None:
        self.host = endpoint_host(host)
        self.domain = host
        self.tls_verify = tls_verify
        self.scheme = "http" if plain_http else "https"
        self._http = httpx.Client(
            verify=tls_verify,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=15.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": "portside/0.1"},
        )
        self.auth = Authenticator(self._http, credentials, host)
        self._scheme_checked = plain_http or tls_verify

    def close(self) -> None:
        self._http.close()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    # -- plumbing --------------------------------------------------------------------
    def _url(self, path: str, query: dict[str, str] | None = None) -> str:
        url = path if "://" in path else urljoin(self.base_url + "/", path.lstrip("/"))
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    def _ensure_scheme(self) -> None:
        """With TLS verification off, fall back to plain HTTP when HTTPS does not answer."""
        if self._scheme_checked:
            return
        self._scheme_checked = True
        try:
            self._http.get(f"https://{self.host}/v2/")
        except httpx.TransportError:
            self.scheme = "http"

    def _send(
        self,
        method: str,
        path: str,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        query: dict[str, str] | None = None,
        stream: bool = False,
        retry: bool = True,
        ok: Callable[[int], bool] = lambda s: s < 400,
        what: str = "",
    ) -> httpx.Response:
        """One request with auth and retries; the response is streamed if `stream`."""
        self._ensure_scheme()
        url = self._url(path, query)
        attempt = 0
        answered = False
        replayable = content is None or isinstance(content, bytes)
        while True:
            h = dict(headers or {})
            value = self.auth.header(scopes)
            if value:
                h["Authorization"] = value
            try:
                req = self._http.build_request(method, url, headers=h, content=content)
                r = self._http.send(req, stream=stream)
            except httpx.TransportError as err:
                if retry and replayable and attempt < RETRIES:
                    _backoff(attempt)
                    attempt += 1
                    continue
                raise RegistryError(
                    f"{self.domain}: {what or method + ' ' + path}: {err or type(err).__name__}"
                ) from None
            if r.status_code == 401 and not answered and replayable:
                answered = True
                if stream:
                    r.read()
                r.close()
                self.auth.answer(r, scopes)
                continue
            if r.status_code >= 500 and retry and replayable and attempt < RETRIES:
                r.close()
                _backoff(attempt)
                attempt += 1
                continue
            if not ok(r.status_code):
                if stream:
                    r.read()
                r.close()
                self._raise(r, what or f"{method} {path}")
            return r

    def _raise(self, r: httpx.Response, what: str) -> None:
        line = _error_line(r)
        if r.status_code == 401:
            raise Unauthorized(f"{self.domain}: {what}: unauthorized: {line}")
        if r.status_code == 403:
            raise Unauthorized(f"{self.domain}: {what}: denied: {line}")
        if r.status_code == 404:
            raise NotFound(f"{self.domain}: {what}: not found: {line}")
        raise RegistryError(f"{self.domain}: {what}: {line}")

    @staticmethod
    def scope(repo: str, actions: str = "pull") -> str:
        return f"repository:{repo}:{actions}"

    # -- API -------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: reachable, and answers a 200 or a 401 we can satisfy."""
        self._send("GET", "/v2/", (), what="ping")

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, Digest]:
        """Exact bytes, media type and digest of a manifest (tag or digest)."""
        r = self._send(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            (self.scope(repo),),
            headers={"Accept": MANIFEST_ACCEPT},
            what=f"manifest {repo}:{reference}" if ":" not in reference else f"{repo}@{reference}",
        )
        raw = r.content
        media_type = mt.base(r.headers.get("content-type", ""))
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(raw)
        if mt.is_schema1(media_type):
            raise UnsupportedMediaType(
                f"{self.domain}/{repo}:{reference}: Docker schema 1 manifests are not supported "
                "(re-push the image with a current tool)"
            )
        digest = Digest.from_bytes(raw)
        if reference.startswith("sha"):
            expected = Digest.parse(reference)
            if expected.algorithm != "sha256":
                digest = Digest.from_bytes(raw, expected.algorithm)
            if digest != expected:
                from portside.errors import DigestMismatch

                raise DigestMismatch(expected, digest, f"manifest {repo}@{reference}")
        return raw, media_type, digest

    def head_manifest(self, repo: str, reference: str) -> tuple[Digest, str, int] | None:
        r = self._send(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            (self.scope(repo),),
            headers={"Accept": MANIFEST_ACCEPT},
            ok=lambda s: s < 400 or s == 404,
        )
        if r.status_code == 404:
            return None
        return (
            Digest.parse(r.headers["docker-content-digest"]),
            mt.base(r.headers.get("content-type", "")),
            int(r.headers.get("content-length", "0")),
        )

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> Digest:
        r = self._send(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            (self.scope(repo, "pull,push"),),
            headers={"Content-Type": media_type},
            content=raw,
            what=f"push manifest {repo}:{reference}",
        )
        r.close()
        return Digest.from_bytes(raw)

    def has_blob(self, repo: str, digest: str) -> bool:
        r = self._send(
            "HEAD",
            f"/v2/{repo}/blobs/{digest}",
            (self.scope(repo, "pull,push"),),
            ok=lambda s: s < 400 or s == 404,
        )
        return r.status_code == 200

    def blob_chunks(
        self, repo: str, digest: str, offset: int = 0, size: int | None = None
    ) -> Iterator[bytes]:
        """Stream a blob from `offset`; a dropped connection resumes with a Range request."""
        pos = offset
        attempt = 0
        while True:
            headers = {"Range": f"bytes={pos}-"} if pos else {}
            if size is not None and pos >= size:
                return
            r = self._send(
                "GET",
                f"/v2/{repo}/blobs/{digest}",
                (self.scope(repo),),
                headers=headers,
                stream=True,
                what=f"blob {digest}",
            )
            try:
                skip = pos if (pos and r.status_code == 200) else 0
                for chunk in r.iter_raw():
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk = chunk[skip:]
                        skip = 0
                    pos += len(chunk)
                    attempt = 0
                    yield chunk
                return
            except httpx.TransportError as err:
                if attempt >= RETRIES:
                    raise RegistryError(
                        f"{self.domain}: blob {digest}: connection failed after {pos} bytes: "
                        f"{err or type(err).__name__}"
                    ) from None
                _backoff(attempt)
                attempt += 1
            finally:
                r.close()

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True if the registry now has the blob in `repo`."""
        r = self._send(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            (self.scope(repo, "pull,push"), self.scope(from_repo, "pull")),
            query={"mount": digest, "from": from_repo},
            what=f"mount {digest}",
        )
        r.close()
        if r.status_code == 201:
            return True
        # 202: the registry opened an upload session instead; cancel it
        location = r.headers.get("location")
        if location:
            with contextlib.suppress(Exception):
                self._send("DELETE", location, (self.scope(repo, "pull,push"),), retry=False)
        return False

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        chunks: Iterator[bytes],
        chunk_size: int | None = None,
    ) -> None:
        """Upload monolithically (POST then one PUT) or, with `chunk_size`, by PATCHes."""
        scopes = (self.scope(repo, "pull,push"),)
        r = self._send("POST", f"/v2/{repo}/blobs/uploads/", scopes, what=f"upload {digest}")
        r.close()
        location = self._location(r)
        if chunk_size is None:
            r = self._send(
                "PUT",
                location,
                scopes,
                query={"digest": digest},
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                },
                content=chunks,
                retry=False,
                what=f"upload {digest}",
            )
            r.close()
            return
        start = 0
        buf = bytearray()

        def patch(data: bytes) -> None:
            nonlocal location, start
            resp = self._send(
                "PATCH",
                location,
                scopes,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{start + len(data) - 1}",
                    "Content-Length": str(len(data)),
                },
                content=bytes(data),
                retry=False,
                what=f"upload {digest}",
            )
            resp.close()
            location = self._location(resp)
            start += len(data)

        for chunk in chunks:
            buf += chunk
            while len(buf) >= chunk_size:
                patch(bytes(buf[:chunk_size]))
                del buf[:chunk_size]
        if buf:
            patch(bytes(buf))
        r = self._send(
            "PUT",
            location,
            scopes,
            query={"digest": digest},
            headers={"Content-Length": "0"},
            content=b"",
            retry=False,
            what=f"upload {digest}",
        )
        r.close()

    def _location(self, r: httpx.Response) -> str:
        location = r.headers.get("location")
        if not location:
            raise RegistryError(f"{self.domain}: upload session without a Location header")
        return urljoin(str(r.url), location)

    def list_tags(self, repo: str) -> list[str]:
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            r = self._send("GET", path, (self.scope(repo),), what=f"tags of {repo}")
            doc: Any = r.json()
            tags.extend(doc.get("tags") or [])
            link = r.headers.get("link", "")
            path = None
            if 'rel="next"' in link:
                target = link.split(";", 1)[0].strip().strip("<>")
                path = urljoin(str(r.url), target)
        return tags


def _sniff_media_type(raw: bytes) -> str:
    """Media type from the document itself, for registries that send none."""
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        raise UnsupportedMediaType("manifest is not JSON") from None
    if isinstance(doc, dict):
        if isinstance(doc.get("mediaType"), str):
            return mt.base(doc["mediaType"])
        if doc.get("schemaVersion") == 1:
            return mt.DOCKER_SCHEMA1_MANIFEST
        if "manifests" in doc:
            return mt.OCI_INDEX
        if "config" in doc:
            return mt.OCI_MANIFEST
    raise UnsupportedMediaType("manifest has no recognisable media type")
