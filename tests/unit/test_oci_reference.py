"""The distribution reference grammar: generated valid and invalid references."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from portside.errors import InvalidReference
from portside.oci.digest import Digest
from portside.oci.reference import NAME_MAX, Reference, parse_reference

ALNUM = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])

# No timing in tests: a loaded CI machine must not turn slowness into failures.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)


@st.composite
def path_component(draw: st.DrawFn) -> str:
    out = draw(ALNUM)
    for _ in range(draw(st.integers(0, 3))):
        out += draw(SEPARATOR) + draw(ALNUM)
    return out


PATHS = st.lists(path_component(), min_size=1, max_size=4).map("/".join)
DOMAIN_COMPONENT = st.from_regex(
    r"[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]", fullmatch=True
)
DOMAIN_NAMES = st.lists(DOMAIN_COMPONENT, min_size=2, max_size=4).map(".".join)
PORTS = st.integers(1, 65535).map(str)
IPV6 = st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::1]", "[::]"])
HOSTS = st.one_of(DOMAIN_NAMES, st.just("localhost"), IPV6, st.just("127.0.0.1"))


@st.composite
def domains(draw: st.DrawFn) -> str:
    host = draw(HOSTS)
    if draw(st.booleans()):
        host += ":" + draw(PORTS)
    return host


TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
DIGESTS = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    st.text(alphabet="0123456789abcdef", min_size=128, max_size=128).map(lambda h: "sha512:" + h),
)


@st.composite
def references(draw: st.DrawFn) -> tuple[str, str | None, str, str | None, str | None]:
    """(text, domain, path, tag, digest) of a valid reference as written."""
    domain = draw(st.one_of(st.none(), domains()))
    path = draw(PATHS)
    if domain is None:
        # Without a host the first component must not itself look like one.
        first = path.split("/")[0]
        assume(not ("/" in path and ("." in first or first == "localhost")))
    name = f"{domain}/{path}" if domain else path
    assume(len(name) <= 200)
    tag = draw(st.one_of(st.none(), TAGS))
    digest = draw(st.one_of(st.none(), DIGESTS))
    text = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return text, domain, path, tag, digest


@RELAXED
@given(references())
def test_valid_round_trip_unnormalised(
    case: tuple[str, str | None, str, str | None, str | None],
) -> None:
    text, domain, path, tag, digest = case
    ref = parse_reference(text, normalize=False)
    assert ref.domain == (domain or "")
    assert ref.path == path
    assert ref.tag == tag
    assert ref.digest == digest
    assert str(ref) == text
    assert parse_reference(str(ref), normalize=False) == ref


@RELAXED
@given(references())
def test_valid_round_trip_normalised(
    case: tuple[str, str | None, str, str | None, str | None],
) -> None:
    text, domain, path, tag, digest = case
    assume(not (domain is None and len(path) == 64 and tag is None and digest is None))
    ref = parse_reference(text)
    assert ref.domain == (domain or "docker.io")
    if domain is None and "/" not in path:
        assert ref.path == "library/" + path
    else:
        assert ref.path == path
    assert ref.tag == (tag if tag or digest else "latest")
    assert ref.digest == digest
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar()) == ref
    assert str(ref).startswith(ref.name)
    assert ref.tag_or_digest == (digest or ref.tag)


@RELAXED
@given(references(), st.integers(0, 100), st.sampled_from("ABCZ"))
def test_uppercase_in_path_rejected(
    case: tuple[str, str | None, str, str | None, str | None], where: int, upper: str
) -> None:
    _, domain, path, tag, _ = case
    # Put an uppercase letter somewhere in the last path component (never a domain).
    comps = path.split("/")
    last = comps[-1]
    i = where % (len(last) + 1)
    comps[-1] = last[:i] + upper + last[i:]
    bad = "/".join(comps)
    prefix = f"{domain}/" if domain else "docker.io/"
    text = prefix + bad + (f":{tag}" if tag else "")
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert repr(text) in str(info.value)


@RELAXED
@given(
    references(),
    st.sampled_from(["!", "#", " ", "$", "%", "+", "//", "/.", "._", "-/", "/", "ü", "..", ":"]),
)
def test_bad_characters_in_path_rejected(
    case: tuple[str, str | None, str, str | None, str | None], junk: str
) -> None:
    _, domain, path, _, _ = case
    text = (f"{domain}/" if domain else "docker.io/") + path + junk
    with pytest.raises(InvalidReference):
        parse_reference(text)


@RELAXED
@given(references(), st.sampled_from([".x", "-x", "a" * 129, "x!", "ü", ""]))
def test_bad_tags_rejected(
    case: tuple[str, str | None, str, str | None, str | None], tag: str
) -> None:
    _, domain, path, _, _ = case
    text = (f"{domain}/" if domain else "") + path + ":" + tag
    with pytest.raises(InvalidReference):
        parse_reference(text)


@RELAXED
@given(
    references(),
    st.sampled_from(["sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32, "", "latest"]),
)
def test_bad_digests_rejected(
    case: tuple[str, str | None, str, str | None, str | None], digest: str
) -> None:
    text = case[0].split("@")[0] + "@" + digest
    with pytest.raises(InvalidReference):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("user/repo", "docker.io/user/repo:latest", "user/repo:latest"),
        ("user/repo/sub", "docker.io/user/repo/sub:latest", "user/repo/sub:latest"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
        ("quay.io/a/b:v1", "quay.io/a/b:v1", "quay.io/a/b:v1"),
        ("Example.COM/a", "Example.COM/a:latest", "Example.COM/a:latest"),
        ("[::1]:5000/img:t", "[::1]:5000/img:t", "[::1]:5000/img:t"),
        ("u/a__b--c_d.e", "docker.io/u/a__b--c_d.e:latest", "u/a__b--c_d.e:latest"),
        (
            "busybox@sha256:" + "a" * 64,
            "docker.io/library/busybox@sha256:" + "a" * 64,
            "busybox@sha256:" + "a" * 64,
        ),
        (
            "busybox:1@sha256:" + "b" * 64,
            "docker.io/library/busybox:1@sha256:" + "b" * 64,
            "busybox:1@sha256:" + "b" * 64,
        ),
    ],
)
def test_docker_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("Busybox", "must be lowercase"),
        ("user/Repo", "must be lowercase"),
        ("example.com/Foo/bar", "must be lowercase"),
        ("a" * 64, "64-character hex"),
        ("example.com/", "missing repository path"),
        (":tag", "missing repository name"),
        ("busybox:", "invalid tag"),
        ("exa_mple.com:5000/x", "invalid registry host"),
        ("host:port/x", "invalid registry host"),
        (" busybox", "whitespace"),
        ("busybox@sha256:" + "a" * 63, "64 lowercase hex"),
    ],
)
def test_invalid_messages(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    msg = str(info.value)
    assert why in msg
    assert repr(text) in msg
    assert "\n" not in msg


def test_name_length_limit() -> None:
    ok = "example.com/" + "a" * (NAME_MAX - len("example.com/"))
    assert parse_reference(ok).name == ok
    with pytest.raises(InvalidReference, match="longer than 255"):
        parse_reference(ok + "a")
    # The limit applies to the normalised name (docker.io/library/ counts).
    short = "a" * (NAME_MAX - len("docker.io/library/") + 1)
    with pytest.raises(InvalidReference, match="longer than 255"):
        parse_reference(short)


def test_unnormalised_keeps_what_is_written() -> None:
    ref = parse_reference("busybox", normalize=False)
    assert ref == Reference(domain="", path="busybox", tag=None, digest=None)
    assert str(ref) == "busybox"
    assert ref.familiar() == "busybox"


def test_helpers() -> None:
    d = Digest.from_bytes(b"x")
    ref = parse_reference("localhost:5000/app:1")
    assert ref.name == "localhost:5000/app"
    assert (ref.host, ref.port) == ("localhost", 5000)
    assert ref.with_tag("2") == Reference("localhost:5000", "app", "2", None)
    assert str(ref.with_digest(d)) == f"localhost:5000/app:1@{d}"
    assert ref.with_digest(d).tag_or_digest == d
    assert ref.with_digest(d).without_digest() == ref
    assert ref.name_only() == Reference("localhost:5000", "app")
    with pytest.raises(InvalidReference, match="invalid tag"):
        ref.with_tag("-bad")
    with pytest.raises(InvalidReference):
        ref.with_digest("sha256:nope")
    six = parse_reference("[::1]:5000/a")
    assert (six.host, six.port, six.is_loopback) == ("::1", 5000, True)
    assert parse_reference("[fe80::1]/a").port is None
    assert parse_reference("example.com/a").port is None


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("localhost/a", True),
        ("localhost:5000/a", True),
        ("127.0.0.1:5000/a", True),
        ("127.1.2.3/a", True),
        ("[::1]:443/a", True),
        ("busybox", False),
        ("10.0.0.1:5000/a", False),
        ("localhost.example.com/a", False),
        ("[fe80::1]/a", False),
    ],
)
def test_is_loopback(text: str, loopback: bool) -> None:
    assert parse_reference(text).is_loopback is loopback


def test_reference_is_hashable_and_frozen() -> None:
    a = parse_reference("busybox")
    b = parse_reference("docker.io/library/busybox:latest")
    assert a == b
    assert len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.tag = "x"  # type: ignore[misc]
