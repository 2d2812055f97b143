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
