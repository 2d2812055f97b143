"""Variable substitution and quote removal, against a table and a reference model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portside.build.dockerfile.expand import (
    ExpansionError,
    expand_heredoc,
    expand_word,
    expand_words,
    unquote,
)
from portside.errors import DockerfileSyntaxError

ENV = {"A": "alpha", "E": "", "SP": "a  b", "X_1": "x1"}


@pytest.mark.parametrize(
    ("word", "out"),
    [
        ("$A", "alpha"),
        ("${A}", "alpha"),
        ("pre${A}post", "prealphapost"),
        ("$A.b", "alpha.b"),
        ("$Apost", ""),
        ("$X_1", "x1"),
        ("$UNSET", ""),
        ("${UNSET:-def}", "def"),
        ("${E:-def}", "def"),
        ("${E-def}", ""),
        ("${UNSET-def}", "def"),
        ("${A:-def}", "alpha"),
        ("${A:+alt}", "alt"),
        ("${E:+alt}", ""),
        ("${E+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-$A}", "alpha"),
        ("${UNSET:-${E:-deep}}", "deep"),
        ('${UNSET:-"a b"}', "a b"),
        ("${A:?must}", "alpha"),
        ("\\$A", "$A"),
        ("\\${A}", "${A}"),
        ("'$A'", "$A"),
        ('"$A"', "alpha"),
        ('"\\$A"', "$A"),
        ('"a\\"b"', 'a"b'),
        ('"a\\b"', "a\\b"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$ a", "$ a"),
        ("$1", ""),
        ("don''t", "dont"),
        ("${SP}", "a  b"),
    ],
)
def test_expand_word_table(word: str, out: str) -> None:
    assert expand_word(word, ENV) == out


@pytest.mark.parametrize(
    ("word", "msg"),
    [
        ("${A", "missing '}'"),
        ("${UNSET:-x", "missing '}'"),
        ("${}", "bad substitution"),
        ("${A:=x}", "unsupported modifier"),
        ("${A^^}", "unsupported modifier"),
        ("${A#x", "missing '}'"),
        ("${A/x", "missing '}'"),
        ("${A/x/y", "missing '}'"),
        ("${A/[z-a]/y}", "bad pattern"),
        ("${UNSET:?need it}", "UNSET: need it"),
        ("${E:?}", "E: is not set"),
        ("'open", "matching '"),
        ('"open', 'matching "'),
    ],
)
def test_expand_errors(word: str, msg: str) -> None:
    with pytest.raises(ExpansionError, match=msg):
        expand_word(word, ENV)
    assert issubclass(ExpansionError, DockerfileSyntaxError)


def test_expand_words_splits_on_unquoted_whitespace_including_variables() -> None:
    assert expand_words("a $SP 'c d' \"$SP\"", ENV) == ["a", "a", "b", "c d", "a  b"]
    assert expand_words("80/tcp ${UNSET}", ENV) == ["80/tcp"]
    assert expand_words('"" x', ENV) == ["", "x"]


def test_backtick_escape_token() -> None:
    assert expand_word("C:\\dir\\$A", ENV, escape="`") == "C:\\dir\\alpha"
    assert expand_word("`$A", ENV, escape="`") == "$A"
    assert expand_word('"`"x"', ENV, escape="`") == '"x'


def test_unquote_keeps_dollars() -> None:
    assert unquote("'a b' \"$X\"") == "a b $X"


# --- reference model --------------------------------------------------------------------
# A word is generated as a list of segments, each of which knows its own source text and
# the value the documented rules give it; the expander must agree on the concatenation.

SAFE = st.text(
    alphabet=st.characters(
        blacklist_characters="$'\"\\ \t\n\r{}", blacklist_categories=("Cs", "Zs", "Cc")
    ),
    min_size=1,
    max_size=6,
)
NAMES = st.sampled_from(["A", "E", "UNSET", "X_1", "long_name"])
MODS = st.sampled_from(["", ":-", "-", ":+", "+"])


def _reference(name: str, mod: str, word: str, env: dict[str, str]) -> str:
    is_set = name in env
    value = env.get(name, "")
    if mod == "":
        return value
    present = is_set and (value != "" or not mod.startswith(":"))
    if mod.endswith("-"):
        return value if present else word
    return word if present else ""


@st.composite
def segments(draw: st.DrawFn, env: dict[str, str]) -> tuple[str, str]:
    kind = draw(st.sampled_from(["lit", "braced", "sq", "dq", "esc", "dqvar"]))
    if kind == "lit":
        s = draw(SAFE)
        return s, s
    if kind == "braced":
        name, mod = draw(NAMES), draw(MODS)
        word = draw(SAFE) if mod else ""
        return "${" + name + mod + word + "}", _reference(name, mod, word, env)
    if kind == "sq":
        s = draw(st.text(alphabet=st.characters(blacklist_characters="'"), max_size=8))
        return "'" + s + "'", s
    if kind == "dq":
        s = draw(st.text(alphabet=st.characters(blacklist_characters='"$\\'), max_size=8))
        return '"' + s + '"', s
    if kind == "esc":
        ch = draw(st.characters(blacklist_categories=("Cs",)))
        return "\\" + ch, ch
    name = draw(NAMES)
    return '"$' + name + '"', env.get(name, "")


@settings(max_examples=300, deadline=None)
@given(data=st.data(), env_vals=st.dictionaries(NAMES, SAFE | st.just(""), max_size=4))
def test_expander_matches_reference_model(data: st.DataObject, env_vals: dict[str, str]) -> None:
    segs = data.draw(st.lists(segments(env_vals), max_size=8))
    src = "".join(s for s, _ in segs)
    assert expand_word(src, env_vals) == "".join(v for _, v in segs)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\", blacklist_categories=("Cs",))))
def test_words_without_specials_round_trip(text: str) -> None:
    assert expand_word(text, ENV) == text
    assert expand_words(text, ENV) == text.split()


def test_heredoc_body_expands_variables_but_keeps_quotes_and_escapes() -> None:
    body = 'echo "hello ${A}" \'$E\' \\$A ${UNSET:-"d"}\n'
    assert expand_heredoc(body, ENV) == 'echo "hello alpha" \'\' \\$A "d"\n'


PAT_ENV = {"P": "/usr/local/bin/tool.tar.gz", "S": "aXbXc"}


@pytest.mark.parametrize(
    ("word", "out"),
    [
        ("${P#*/}", "usr/local/bin/tool.tar.gz"),
        ("${P##*/}", "tool.tar.gz"),
        ("${P%.*}", "/usr/local/bin/tool.tar"),
        ("${P%%.*}", "/usr/local/bin/tool"),
        ("${P#nomatch}", "/usr/local/bin/tool.tar.gz"),
        ("${S/X/-}", "a-bXc"),
        ("${S//X/-}", "a-b-c"),
        ("${S//X}", "abc"),
        ("${S//[ab]/_}", "_X_Xc"),
        ("${S//[!ab]/_}", "a_b__"),
        ("${S/*/all}", "all"),
        ("${S//?/.}", "....."),
        ("${S/X*/}", "a"),
        ("${S//}", "aXbXc"),
        ("${UNSET#x}", ""),
        ("${S/$S/whole}", "whole"),
    ],
)
def test_pattern_operators(word: str, out: str) -> None:
    assert expand_word(word, PAT_ENV) == out
