"""Dockerfile text -> instruction nodes (keyword, flags, raw arguments, heredocs, lines).

This stage knows only the file's layout (directives, comments, continuations,
heredocs); what an instruction's arguments mean is instructions.py's job, and
variable substitution happens later (expand.py) because its values depend on
the build (ARGs, the base image's ENV).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from portside.errors import DockerfileSyntaxError

KNOWN_DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_DIRECTIVE_RE = re.compile(r"^#[ \t]*([A-Za-z][A-Za-z0-9]*)[ \t]*=[ \t]*(.*?)[ \t]*$")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)(.*)$")
_HEREDOC_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Heredoc:
    """One `<<NAME` body. `expand` is False when the name was quoted (`<<'EOF'`)."""

    name: str
    content: str
    expand: bool = True
    strip_tabs: bool = False
    fd: int | None = None


@dataclass(frozen=True)
class Node:
    """One instruction as written: flags and arguments are still raw text."""

    keyword: str
    flags: tuple[str, ...]
    args: str
    line: int
    end_line: int
    original: str
    heredocs: tuple[Heredoc, ...] = ()


@dataclass
class Dockerfile:
    """A parsed file: its nodes and the parser directives that applied."""

    filename: str
    nodes: list[Node]
    directives: dict[str, str] = field(default_factory=dict)
    escape: str = "\\"


def syntax_error(filename: str, line: int, keyword: str | None, msg: str) -> DockerfileSyntaxError:
    where = f"{filename}:{line}: " + (f"{keyword}: " if keyword else "")
    return DockerfileSyntaxError(where + msg)


def split_raw_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words.

    The words are later given to the expander, which removes the quotes; splitting
    first is what lets `ENV a="b c" d=e` hold two pairs.
    """
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    quote: str | None = None
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote is None and ch in " \t\r\n":
            if in_word:
                words.append("".join(cur))
                cur = []
                in_word = False
            i += 1
            continue
        in_word = True
        cur.append(ch)
        if ch == escape and i + 1 < n and quote != "'":
            cur.append(text[i + 1])
            i += 2
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif quote == ch:
            quote = None
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


def _split_flags(rest: str, escape: str) -> tuple[list[str], str]:
    """Leading `--name[=value]` words; `--` alone ends them. Returns (flags, remainder)."""
    flags: list[str] = []
    i = 0
    n = len(rest)
    while True:
        while i < n and rest[i] in " \t":
            i += 1
        if not rest.startswith("--", i):
            break
        j = i
        quote: str | None = None
        while j < n and (quote is not None or rest[j] not in " \t"):
            ch = rest[j]
            if ch == escape and j + 1 < n and quote != "'":
                j += 2
                continue
            if quote is None and ch in "'\"":
                quote = ch
            elif quote == ch:
                quote = None
            j += 1
        word = rest[i:j]
        i = j
        if word == "--":
            while i < n and rest[i] in " \t":
                i += 1
            break
        flags.append(word)
    return flags, rest[i:]


def _is_comment(line: str) -> bool:
    return line.lstrip(" \t").startswith("#")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """(line without the trailing escape, True) when the line continues on the next one."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def parse_heredoc_word(word: str) -> tuple[str, bool, bool, int | None] | None:
    """`[n]<<[-]NAME` (NAME maybe quoted) -> (name, expand, strip_tabs, fd), else None."""
    m = _HEREDOC_RE.match(word)
    if not m or m.group(3).startswith("<"):
        return None
    raw = m.group(3)
    quoted = any(q in raw for q in "'\"")
    name = raw
    if quoted:
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            name = raw[1:-1]
        else:
            return None
    if not name or not _HEREDOC_NAME_RE.match(name):
        return None
    fd = int(m.group(1)) if m.group(1) else None
    return name, not quoted, m.group(2) == "-", fd


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole file. Raises DockerfileSyntaxError naming the file and line."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if lines and lines[-1] == "":
        lines.pop()
    directives: dict[str, str] = {}
    i = 0
    # Parser directives: only at the very top, each once; anything else ends them.
    while i < len(lines):
        m = _DIRECTIVE_RE.match(lines[i].strip(" \t"))
        if not m:
            break
        key = m.group(1).lower()
        if key not in KNOWN_DIRECTIVES:
            break  # an unknown directive is a comment, and directives end at a comment
        if key in directives:
            raise syntax_error(filename, i + 1, None, f"parser directive {key!r} given twice")
        directives[key] = m.group(2)
        i += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise syntax_error(
            filename, 1, None, f"invalid escape token {escape!r}: only \\ and ` are allowed"
        )
    df = Dockerfile(filename=filename, nodes=[], directives=directives, escape=escape)
    while i < len(lines):
        raw = lines[i]
        i += 1
        if _is_comment(raw):
            continue
        start = i
        line, cont = _continues(raw.lstrip(" \t"), escape)
        if not cont and not line.strip():
            continue
        while cont and i < len(lines):
            nxt = lines[i]
            i += 1
            if _is_comment(nxt) or not nxt.strip(" \t"):
                continue  # docker allows comments and empty lines inside a continuation
            part, cont = _continues(nxt, escape)
            line += part
        if not line.strip():
            continue
        df.nodes.append(node_from_line(line, start, i, lines, df))
        i = df.nodes[-1].end_line
    return df


def node_from_line(line: str, start: int, end: int, lines: list[str], df: Dockerfile) -> Node:
    stripped = line.strip(" \t")
    parts = re.split(r"[ \t]+", stripped, maxsplit=1)
    keyword = parts[0].upper()
    rest = parts[1] if len(parts) > 1 else ""
    if not re.match(r"^[A-Z][A-Z0-9_]*$", keyword):
        raise syntax_error(df.filename, start, None, f"unknown instruction: {parts[0]}")
    flags, args = _split_flags(rest, df.escape)
    heredocs: list[Heredoc] = []
    if keyword in HEREDOC_KEYWORDS and "<<" in args:
        pos = end
        for word in split_raw_words(args, df.escape):
            hd = parse_heredoc_word(word)
            if hd is None:
                continue
            name, expand, strip_tabs, fd = hd
            body: list[str] = []
            while True:
                if pos >= len(lines):
                    raise syntax_error(
                        df.filename, start, keyword, f"unterminated heredoc {name!r}"
                    )
                text = lines[pos]
                pos += 1
                if strip_tabs:
                    text = text.lstrip("\t")
                if text == name:
                    break
                body.append(text + "\n")
            heredocs.append(Heredoc(name, "".join(body), expand, strip_tabs, fd))
        end = pos
    return Node(
        keyword=keyword,
        flags=tuple(flags),
        args=args.strip(" \t"),
        line=start,
        end_line=end,
        original=stripped,
        heredocs=tuple(heredocs),
    )
