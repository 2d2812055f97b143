"""WWW-Authenticate parsing (pure)."""

from __future__ import annotations

from portside.registry.auth import parse_challenges


def test_bearer_with_params() -> None:
    [ch] = parse_challenges(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull"'
    )
    assert ch.scheme == "bearer"
    assert ch.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull",
    }


def test_several_challenges_and_escapes() -> None:
    chs = parse_challenges('Basic realm="a \\"quoted\\" realm", Bearer realm="r", error=x')
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].params["realm"] == 'a "quoted" realm'
    assert chs[1].params == {"realm": "r", "error": "x"}


def test_empty() -> None:
    assert parse_challenges("") == []


def test_tokens_cached_per_scope() -> None:
    """Against a token server run here on 127.0.0.1 (a real HTTP exchange)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    import httpx

    from portside.registry.auth import Authenticator

    asked: list[list[str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            scopes = parse_qs(urlparse(self.path).query).get("scope", [])
            asked.append(scopes)
            body = json.dumps({"token": f"t{len(asked)}", "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = httpx.Client()
    try:
        auth = Authenticator(lambda: client, None, "reg")
        challenge = f'Bearer realm="http://127.0.0.1:{server.server_address[1]}/t",service="s"'
        pull = ("repository:a:pull",)
        assert auth.header(pull) is None  # nothing known before the first challenge
        assert auth.answer(challenge, pull) == "Bearer t1"
        assert auth.header(pull) == "Bearer t1"  # cached
        assert auth.header(("repository:b:pull",)) is None  # another scope: not cached
        assert auth.answer(challenge, ("repository:b:pull",)) == "Bearer t2"
        assert asked == [["repository:a:pull"], ["repository:b:pull"]]
    finally:
        client.close()
        server.shutdown()
        server.server_close()
