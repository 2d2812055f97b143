"""HTTP client of one registry per the OCI distribution spec.

Every request goes through `_send`, which adds auth (answering a 401 once),
retries connection errors and 5xx answers with backoff for idempotent
requests, and turns error bodies into one line. Blob downloads resume with a
Range request after a dropped connection.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

from portside.errors import (
    NotFound,
    RegistryError,
    Unauthorized,
    UnsupportedMediaType,
)
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.registry.auth import Authenticator

if TYPE_CHECKING:
    import httpx

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
    import httpx

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


def _retryable(status: int) -> bool:
    """5xx and 429 (too many requests) are worth another try; other errors are final."""
    return status >= 500 or status == 429


def _backoff(attempt: int, retry_after: str | None = None) -> None:
    """Exponential backoff with jitter; a server's Retry-After (seconds) wins, up to 10 s."""
    if retry_after and retry_after.strip().isdigit():
        time.sleep(min(float(retry_after), 10.0))
        return
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
        self._plain_http = plain_http
        self._max_connections = max_connections
        self._httpx: httpx.Client | None = None
        self._httpx_lock = threading.Lock()
        self.auth = Authenticator(self._client, credentials, host)
        self._timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        self._pool_lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._conns: dict[int, tuple[str, str, http.client.HTTPConnection]] = {}
        self._scheme_checked = plain_http or tls_verify

    def _client(self) -> httpx.Client:
        """The httpx client, made on first use: a pull from an open registry (manifests
        and blobs go through http.client) never pays for importing httpx."""
        with self._httpx_lock:
            if self._httpx is None:
                import httpx

                self._httpx = httpx.Client(
                    # loading the CA bundle costs ~0.1 s of CPU: skip it without TLS
                    verify=self.tls_verify and not self._plain_http,
                    follow_redirects=True,
                    timeout=httpx.Timeout(self._timeout, connect=15.0),
                    limits=httpx.Limits(
                        max_connections=self._max_connections,
                        max_keepalive_connections=self._max_connections,
                    ),
                    headers={"User-Agent": "portside/0.1"},
                )
            return self._httpx

    def close(self) -> None:
        if self._httpx is not None:
            self._httpx.close()
        with self._pool_lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
            self._idle.clear()

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
            self._done(self._raw_get(f"https://{self.host}/v2/", {}))
        except (OSError, http.client.HTTPException):
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
        import httpx

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
                client = self._client()
                req = client.build_request(method, url, headers=h, content=content)
                r = client.send(req, stream=stream)
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
                self.auth.answer(r.headers.get("www-authenticate", ""), scopes)
                continue
            if _retryable(r.status_code) and retry and replayable and attempt < RETRIES:
                r.close()
                _backoff(attempt, r.headers.get("retry-after"))
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
        what = f"manifest {repo}@{reference}" if ":" in reference else f"{repo}:{reference}"
        self._ensure_scheme()
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        attempt = 0
        while True:
            resp = self._raw_request(url, {"Accept": MANIFEST_ACCEPT}, (self.scope(repo),), what)
            try:
                raw = resp.read()
                content_type = resp.getheader("content-type", "")
                break
            except (OSError, http.client.HTTPException) as err:
                if attempt >= RETRIES:
                    raise RegistryError(f"{self.domain}: {what}: {err}") from None
                _backoff(attempt)
                attempt += 1
            finally:
                self._done(resp)
        media_type = mt.base(content_type)
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
        """Stream a blob from `offset`; a dropped connection resumes with a Range request.

        Bodies are read with the stdlib's http.client in 1 MiB reads: for a large blob
        that costs a sixth of the CPU of httpx's streaming, which matters on a busy host.
        """
        pos = offset
        attempt = 0
        scopes = (self.scope(repo),)
        self._ensure_scheme()
        url = self._url(f"/v2/{repo}/blobs/{digest}")
        while True:
            if size is not None and pos >= size:
                return
            headers = {"Range": f"bytes={pos}-"} if pos else {}
            resp = self._raw_request(url, headers, scopes, f"blob {digest}", allow_416=True)
            try:
                if resp.status == 416:
                    return  # asked past the end: everything is here already
                skip = pos if (pos and resp.status == 200) else 0
                while True:
                    # read(), not read1(): the loop filling 1 MiB runs in C without the GIL,
                    # which keeps a busy host's scheduler from stalling the other threads
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        if resp.length:  # closed before Content-Length was reached
                            raise ConnectionError("connection closed mid-body")
                        break
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
            except (OSError, http.client.HTTPException) as err:
                if attempt >= RETRIES:
                    raise RegistryError(
                        f"{self.domain}: blob {digest}: connection failed after {pos} bytes: "
                        f"{err or type(err).__name__}"
                    ) from None
                _backoff(attempt)
                attempt += 1
            finally:
                self._done(resp)

    def _raw_request(
        self,
        url: str,
        headers: dict[str, str],
        scopes: tuple[str, ...],
        what: str,
        allow_416: bool = False,
    ) -> http.client.HTTPResponse:
        """GET with auth (one 401 answered) and retries; returns a 2xx response, body unread."""
        attempt = 0
        answered = False
        while True:
            h = {"User-Agent": "portside/0.1", **headers}
            value = self.auth.header(scopes)
            if value:
                h["Authorization"] = value
            try:
                resp = self._raw_get(url, h)
            except (OSError, http.client.HTTPException) as err:
                # a name that does not resolve, or a TLS failure, will not heal in a second
                if attempt < RETRIES and not isinstance(err, socket.gaierror | ssl.SSLError):
                    _backoff(attempt)
                    attempt += 1
                    continue
                hint = ""
                if isinstance(err, ssl.SSLError) and url.startswith("https:"):
                    hint = " (a plain-HTTP registry needs --tls-verify=false)"
                raise RegistryError(
                    f"{self.domain}: {what}: {err or type(err).__name__}{hint}"
                ) from None
            status = resp.status
            if status < 300 or (allow_416 and status == 416):
                return resp
            body = b""
            with contextlib.suppress(OSError, http.client.HTTPException):
                body = resp.read()
            self._done(resp)
            if status == 401 and not answered:
                answered = True
                self.auth.answer(resp.getheader("www-authenticate", ""), scopes)
                continue
            if _retryable(status) and attempt < RETRIES:
                _backoff(attempt, resp.getheader("retry-after"))
                attempt += 1
                continue
            self._raise_raw(status, resp.reason, body, what)

    def _raw_get(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """GET with http.client, following redirects (dropping auth when the host changes).

        Connections are kept alive and reused (see `_done`), so a pull of many blobs
        from a TLS registry does not pay a handshake per blob.
        """
        for _ in range(6):
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn, reused = self._take(parts.scheme, parts.netloc)
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                conn.close()
                if not reused:
                    raise
                # the server closed an idle kept-alive connection: not a failure
                conn = self._new_conn(parts.scheme, parts.netloc)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
            self._conns[id(resp)] = (parts.scheme, parts.netloc, conn)
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("location"):
                target = urljoin(url, resp.getheader("location", ""))
                resp.read()
                self._done(resp)
                if urlsplit(target).netloc != parts.netloc:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url = target
                continue
            return resp
        raise RegistryError(f"{self.domain}: too many redirects for {url}")

    def _new_conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                netloc, timeout=self._timeout, context=self._ssl_context()
            )
        return http.client.HTTPConnection(netloc, timeout=self._timeout)

    def _take(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        with self._pool_lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        return self._new_conn(scheme, netloc), False

    def _done(self, resp: http.client.HTTPResponse) -> None:
        """Finish with a response: its connection goes back to the pool if it is clean."""
        entry = self._conns.pop(id(resp), None)
        # reusable only when the body was read to its end
        clean = (resp.isclosed() or resp.length == 0) and not resp.will_close
        resp.close()
        if entry is None:
            return
        scheme, netloc, conn = entry
        if clean:
            with self._pool_lock:
                idle = self._idle.setdefault((scheme, netloc), [])
                if len(idle) < self._max_connections:
                    idle.append(conn)
                    return
        conn.close()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if self.tls_verify:
                self._ssl = ssl.create_default_context()
            else:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                self._ssl = ctx
        return self._ssl

    def _raise_raw(self, status: int, reason: str, body: bytes, what: str) -> None:
        line = f"HTTP {status} {reason}"
        try:
            errs = json.loads(body).get("errors")
            if errs:
                code = str(errs[0].get("code", "")).strip()
                msg = str(errs[0].get("message", "")).strip()
                line = f"{code}: {msg}" if code and msg else code or msg or line
        except (ValueError, AttributeError):
            pass
        if status in (401, 403):
            raise Unauthorized(f"{self.domain}: {what}: unauthorized: {line}")
        if status == 404:
            raise NotFound(f"{self.domain}: {what}: not found: {line}")
        raise RegistryError(f"{self.domain}: {what}: {line}")

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
