"""Registry authentication: WWW-Authenticate challenges, Bearer tokens and Basic.

Tokens are cached per scope set until shortly before they expire, so a pull of
many layers asks the token server once, as the distribution spec intends.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portside.errors import RegistryError, Unauthorized

if TYPE_CHECKING:
    import httpx

__all__ = ["Authenticator", "Challenge", "parse_challenges"]

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PARAM_RE = re.compile(r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="...",service="...", Basic realm="..."` (RFC 7235) into challenges."""
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        while pos < len(text) and text[pos] in " ,":
            pos += 1
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            break
        scheme = m.group(0).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            pm = _PARAM_RE.match(text, pos)
            if pm is None:
                break
            # a bare token followed by a space is the next challenge's scheme
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[pm.group(1).lower()] = value
            pos = pm.end()
        out.append(Challenge(scheme, params))
    return out


class Authenticator:
    """Answers challenges for one registry host; thread-safe (layers download in parallel)."""

    def __init__(
        self,
        http: Callable[[], httpx.Client],
        credentials: tuple[str, str] | None,
        host: str = "",
    ) -> None:
        self._http = http
        self.credentials = credentials
        self.host = host
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value to send now, if we know what the registry wants."""
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self._basic()
        if ch.scheme == "bearer":
            key = " ".join(sorted(scopes))
            with self._lock:
                cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
        return None

    def _basic(self) -> str | None:
        if self.credentials is None:
            return None
        raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def answer(self, www_authenticate: str, scopes: tuple[str, ...]) -> str:
        """Handle a 401: fetch a token (or build Basic) and return the header to retry with."""
        challenges = parse_challenges(www_authenticate)
        by_scheme = {c.scheme: c for c in challenges}
        if "bearer" in by_scheme:
            ch = by_scheme["bearer"]
            self._challenge = ch
            token = self._fetch_token(ch, scopes)
            return f"Bearer {token}"
        if "basic" in by_scheme:
            self._challenge = by_scheme["basic"]
            value = self._basic()
            if value is None:
                raise Unauthorized(f"{self.host}: unauthorized: authentication required")
            return value
        raise Unauthorized(f"{self.host}: unauthorized (no usable authentication challenge)")

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> str:
        realm = ch.params.get("realm")
        if not realm:
            raise RegistryError(f"{self.host}: bearer challenge without a realm")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        challenge_scope = ch.params.get("scope")
        wanted = list(scopes) or ([challenge_scope] if challenge_scope else [])
        params.extend(("scope", s) for s in wanted)
        import httpx

        auth = None
        if self.credentials is not None:
            auth = httpx.BasicAuth(self.credentials[0], self.credentials[1])
            params.append(("account", self.credentials[0]))
        try:
            r = self._http().get(realm, params=params, auth=auth)
        except httpx.HTTPError as err:
            raise RegistryError(f"{self.host}: token server {realm}: {err}") from None
        if r.status_code in (401, 403):
            raise Unauthorized(
                f"{self.host}: unauthorized: the token server refused the credentials"
            )
        if r.status_code != 200:
            raise RegistryError(f"{self.host}: token server {realm} answered {r.status_code}")
        try:
            doc: Any = r.json()
            token = doc.get("token") or doc.get("access_token")
        except ValueError:
            token = None
            doc = {}
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: token server {realm} sent no token")
        expires_in = doc.get("expires_in", 60)
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = 60
        # renew a little early so a token never expires mid-request
        expiry = time.monotonic() + max(float(expires_in) - 10.0, float(expires_in) / 2)
        with self._lock:
            self._tokens[" ".join(sorted(scopes))] = (token, expiry)
        return token
