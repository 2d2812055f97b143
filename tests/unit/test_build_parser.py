"""Dockerfile layout: directives, comments, continuations, heredocs, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from portside.build.context import find_dockerfile
from portside.build.dockerfile.parser import parse, split_raw_words
from portside.errors import BuildError, DockerfileSyntaxError, PortsideError


def test_instructions_keep_their_line_numbers_and_case_insensitive_keywords() -> None:
    df = parse("FROM scratch\n\n# c\nrun echo a\nCmd x\n", "Containerfile")
    assert [(n.keyword, n.line, n.end_line) for n in df.nodes] == [
        ("FROM", 1, 1),
        ("RUN", 4, 4),
        ("CMD", 5, 5),
    ]
    assert df.nodes[1].args == "echo a"


def test_directives_only_at_the_top() -> None:
    df = parse("# syntax=docker/dockerfile:1\n#Escape = `\nFROM scratch\n")
    assert df.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert df.escape == "`"
    late = parse("# comment\n# escape=`\nFROM scratch\n")
    assert late.escape == "\\" and late.directives == {}
    after_blank = parse("\n# escape=`\nFROM scratch\n")
    assert after_blank.escape == "\\"


def test_unknown_directive_is_a_comment_and_ends_directives() -> None:
    df = parse("# foo=bar\n# escape=`\nFROM x\n")
    assert df.directives == {} and df.escape == "\\"
    assert parse("# check=skip=all\nFROM x\n").directives == {"check": "skip=all"}


def test_duplicate_directive_is_an_error() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:2: .*given twice"):
        parse("# escape=\\\n# escape=`\nFROM x\n")


def test_bad_escape_directive() -> None:
    with pytest.raises(DockerfileSyntaxError, match="invalid escape token"):
        parse("# escape=x\nFROM scratch\n")


def test_continuation_with_comments_and_empty_lines_inside() -> None:
    text = "FROM scratch\nRUN a \\\n  # inner comment\n\n    && b \\   \n  c\nCMD d\n"
    df = parse(text)
    run = df.nodes[1]
    assert (run.line, run.end_line) == (2, 6)
    assert run.args == "a     && b   c"
    assert df.nodes[2].line == 7


def test_backtick_escape_continues_lines_and_keeps_backslashes() -> None:
    df = parse("# escape=`\nFROM scratch\nCOPY c:\\a `\n  c:\\b\n")
    assert df.nodes[1].args == "c:\\a   c:\\b"
    assert (df.nodes[1].line, df.nodes[1].end_line) == (3, 4)


def test_crlf_and_bom() -> None:
    df = parse("\ufeffFROM scratch\r\nENV a=b \\\r\n c=d\r\n")
    assert [n.keyword for n in df.nodes] == ["FROM", "ENV"]
    assert df.nodes[1].args == "a=b  c=d"


def test_flags_are_split_from_arguments() -> None:
    n = parse('FROM x\nCOPY --from=a --chown="1 2" -- --weird /d\n').nodes[1]
    assert n.flags == ("--from=a", '--chown="1 2"')
    assert n.args == "--weird /d"


def test_heredoc_run_and_copy() -> None:
    text = (
        "FROM x\nRUN <<EOF\necho a\necho $b\nEOF\n"
        "COPY <<f1 <<'f2' /dst/\none\nf1\ntwo $x\nf2\nCMD z\n"
    )
    df = parse(text)
    run, copy, cmd = df.nodes[1:]
    assert (run.line, run.end_line) == (2, 5)
    assert run.heredocs[0].name == "EOF"
    assert run.heredocs[0].content == "echo a\necho $b\n"
    assert run.heredocs[0].expand
    assert [(h.name, h.content, h.expand) for h in copy.heredocs] == [
        ("f1", "one\n", True),
        ("f2", "two $x\n", False),
    ]
    assert (copy.line, copy.end_line) == (6, 10)
    assert cmd.line == 11


def test_heredoc_dash_strips_leading_tabs_and_quoted_with_double_quotes() -> None:
    df = parse('FROM x\nRUN cat <<-"END"\n\t\tindented\n\tEND\n')
    hd = df.nodes[1].heredocs[0]
    assert (hd.name, hd.content, hd.expand, hd.strip_tabs) == ("END", "indented\n", False, True)


def test_heredoc_keeps_comment_and_blank_lines_in_body() -> None:
    df = parse("FROM x\nRUN <<EOF\n# not a comment\n\nEOF\n")
    assert df.nodes[1].heredocs[0].content == "# not a comment\n\n"


def test_heredoc_with_fd_and_not_heredoc_in_other_instructions() -> None:
    df = parse("FROM x\nRUN cat 3<<EOF\nx\nEOF\nENV a=<<EOF\n")
    assert df.nodes[1].heredocs[0].fd == 3
    assert df.nodes[2].keyword == "ENV" and df.nodes[2].heredocs == ()


def test_unterminated_heredoc_names_line() -> None:
    with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:3: RUN: unterminated heredoc"):
        parse("FROM x\n\nRUN <<EOF\nabc\n")


def test_unknown_instruction_token() -> None:
    with pytest.raises(PortsideError, match=r"^Dockerfile:2: unknown instruction"):
        parse("FROM x\n=what\n")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ('a="b c" d', ['a="b c"', "d"]),
        ("'x y' z", ["'x y'", "z"]),
        ("a\\ b c", ["a\\ b", "c"]),
        ("", []),
    ],
)
def test_split_raw_words(text: str, words: list[str]) -> None:
    assert split_raw_words(text) == words


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                blacklist_characters="#\\\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
                blacklist_categories=("Cs",),
            ),
            min_size=1,
            max_size=12,
        ).filter(lambda s: s.strip(" \t") != ""),
        min_size=1,
        max_size=5,
    )
)
def test_continuations_join_pieces_exactly(pieces: list[str]) -> None:
    joined = "".join(pieces)
    # a leading `--word` is an instruction flag, and `--` alone ends the flags: not args
    assume(not joined.lstrip(" \t").startswith("--"))
    text = "FROM x\nRUN " + "\\\n".join(pieces) + "\n"
    node = parse(text).nodes[1]
    assert node.args == joined.strip(" \t")
    assert (node.line, node.end_line) == (2, 1 + len(pieces))


def test_find_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no Containerfile or Dockerfile"):
        find_dockerfile(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    assert find_dockerfile(tmp_path).name == "Dockerfile"
    (tmp_path / "Containerfile").write_text("FROM x\n")
    assert find_dockerfile(tmp_path).name == "Containerfile"
    assert find_dockerfile(tmp_path, str(tmp_path / "Dockerfile")).name == "Dockerfile"
    with pytest.raises(BuildError, match="nope: no such"):
        find_dockerfile(tmp_path, "nope")
