"""Any text gives either a plan or one DockerfileSyntaxError/BuildError line, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from portside.build.dockerfile.instructions import Run
from portside.build.evaluate import evaluate_metadata
from portside.build.stages import plan_build
from portside.errors import PortsideError

KEYWORDS = [
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "LABEL",
    "ARG",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "COPY",
    "ADD",
    "VOLUME",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "ONBUILD",
    "MAINTAINER",
    "#",
    "# escape=`",
    "",
]
PIECES = st.sampled_from(
    [
        "a",
        "b=c",
        " ",
        "$",
        "${",
        "}",
        "${A:-x}",
        "${A?}",
        "${A#",
        "${A//",
        "${A%%*}",
        "[!",
        "*",
        "'",
        '"',
        "\\",
        "`",
        "[",
        "]",
        '["x"]',
        "<<EOF",
        "<<-'E'",
        "EOF",
        "--from=0",
        "--chown=",
        "--mount=type=cache,target=/c",
        "--network=none",
        "--interval=1s",
        "AS",
        "scratch",
        "CMD",
        "NONE",
        "80/tcp",
        "=",
        ":",
        "/x",
        "\t",
        "\n",
    ]
)
LINE = st.tuples(st.sampled_from(KEYWORDS), st.lists(PIECES, max_size=6)).map(
    lambda t: (t[0] + " " + "".join(t[1])).rstrip("\n")
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(LINE, max_size=8),
    st.dictionaries(st.sampled_from(["A", "B"]), st.text(max_size=3)),
)
def test_fuzz_never_crashes(lines: list[str], args: dict[str, str]) -> None:
    text = "FROM scratch\n" + "\n".join(lines) + "\n"
    try:
        plan = plan_build(text, build_args=args)
        evaluate_metadata(plan, skip=(Run,))
    except PortsideError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip("\n"), msg
