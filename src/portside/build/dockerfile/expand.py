"""Variable substitution and quote removal, as the Dockerfile language defines them.

The builder (not a shell) performs these in ADD COPY ENV EXPOSE FROM LABEL
STOPSIGNAL USER VOLUME WORKDIR (and in ARG defaults and COPY/ADD flag values);
RUN, CMD and ENTRYPOINT are left to the container's shell. Supported:
`$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`,
`${VAR:?msg}`, `${VAR?msg}`, the pattern forms `${VAR#p}` `${VAR##p}` `${VAR%p}`
`${VAR%%p}` `${VAR/p/r}` `${VAR//p/r}` (newer Dockerfile syntax), single and double
quotes, and the escape token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from portside.errors import DockerfileSyntaxError

# Instructions whose arguments the builder expands (docs: "Environment replacement").
EXPANDING = frozenset(
    {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)
_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | set("0123456789")


class ExpansionError(DockerfileSyntaxError):
    """A substitution is malformed (`${`, bad modifier) or `${VAR?msg}` hit an unset VAR."""


class _Words:
    """Collects output; in split mode unquoted whitespace (also from variables) splits words."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.cur: list[str] = []
        self.in_word = False

    def raw(self, s: str) -> None:
        self.cur.append(s)
        self.in_word = True

    def unquoted(self, s: str) -> None:
        for ch in s:
            if ch.isspace():
                if self.in_word:
                    self.words.append("".join(self.cur))
                    self.cur = []
                    self.in_word = False
            else:
                self.raw(ch)

    def mark(self) -> None:
        """An empty quoted string ("") still makes a word."""
        self.in_word = True

    def finish(self) -> list[str]:
        if self.in_word:
            self.words.append("".join(self.cur))
        return self.words


class _Lex:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, raw: bool = False) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw = raw  # heredoc bodies: quotes and escapes stay as written

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def run(self, out: _Words, split: bool, stop: str = "") -> str:
        """Process until one of the `stop` characters (consumed and returned) or the end
        (returns "")."""
        add = out.unquoted if split else out.raw
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch in stop:
                self.pos += 1
                return ch
            if self.raw and ch != "$":
                self.pos += 1
                out.raw(ch)
                if ch == self.escape and self.pos < len(self.text):
                    out.raw(self.next())
                continue
            if ch == "'":
                self.pos += 1
                out.mark()
                end = self.text.find("'", self.pos)
                if end < 0:
                    raise ExpansionError("unexpected end of text looking for the matching '")
                out.raw(self.text[self.pos : end])
                self.pos = end + 1
            elif ch == '"':
                self.pos += 1
                out.mark()
                self._double(out)
            elif ch == "$":
                add(self._dollar())
            elif ch == self.escape:
                self.pos += 1
                if self.pos < len(self.text):
                    out.raw(self.next())
            else:
                self.pos += 1
                add(ch)
        return ""

    def _double(self, out: _Words) -> None:
        while True:
            if self.pos >= len(self.text):
                raise ExpansionError('unexpected end of text looking for the matching "')
            ch = self.next()
            if ch == '"':
                return
            if ch == "$":
                self.pos -= 1
                out.raw(self._dollar())
            elif ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.raw(self.next())
            else:
                out.raw(ch)

    def _name(self) -> str:
        start = self.pos
        if self.peek() and self.peek() in "0123456789":
            while self.peek() and self.peek() in "0123456789":
                self.pos += 1
            return self.text[start : self.pos]
        if self.peek() not in _NAME_START or not self.peek():
            return ""
        while self.peek() and self.peek() in _NAME_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        self.pos += 1  # the '$'
        if self.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.pos += 1
        name = self._name()
        if not name:
            raise ExpansionError(f"bad substitution in {self.text!r}")
        ch = self.next()
        if not ch:
            raise ExpansionError(f"missing '}}' in {self.text!r}")
        if ch == "}":
            return self.env.get(name, "")
        if ch in ("#", "%", "/"):
            return self._pattern_op(name, ch)
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?") or not ch:
            raise ExpansionError(f"unsupported modifier {ch!r} in substitution ${{{name}...}}")
        sub = _Words()
        if not self.run(sub, split=False, stop="}"):
            raise ExpansionError(f"missing '}}' in {self.text!r}")
        word = "".join(sub.cur)
        is_set = name in self.env
        value = self.env.get(name, "")
        present = is_set and (value != "" or not colon)
        if ch == "-":
            return value if present else word
        if ch == "+":
            return word if present else ""
        if not present:
            raise ExpansionError(f"{name}: {word or 'is not set'}")
        return value

    def _pattern_op(self, name: str, op: str) -> str:
        """${V#p} ${V##p} ${V%p} ${V%%p} ${V/p/r} ${V//p/r}: shell patterns on the value."""
        longest = self.peek() == op
        if longest:
            self.pos += 1
        value = self.env.get(name, "")
        sub = _Words()
        if op == "/":
            ended = self.run(sub, split=False, stop="/}")
            pattern = "".join(sub.cur)
            rep = _Words()
            if ended == "/":
                ended = self.run(rep, split=False, stop="}")
            if ended != "}":
                raise ExpansionError(f"missing '}}' in {self.text!r}")
            return _replace(value, _glob(pattern), "".join(rep.cur), longest)
        if not self.run(sub, split=False, stop="}"):
            raise ExpansionError(f"missing '}}' in {self.text!r}")
        rx = _glob("".join(sub.cur))
        cuts = range(len(value), -1, -1) if longest else range(len(value) + 1)
        for n in cuts:
            if op == "#" and rx.fullmatch(value[:n]):
                return value[n:]
            if op == "%" and rx.fullmatch(value[len(value) - n :]):
                return value[: len(value) - n]
        return value


def _glob(pattern: str) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, `[...]`) as a regex; anything else is literal."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            neg = body[:1] in ("!", "^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise ExpansionError(f"bad pattern {pattern!r}: {e}") from None


def _replace(value: str, rx: re.Pattern[str], rep: str, every: bool) -> str:
    """Leftmost-longest replacement, once or (for //) everywhere, as the shell does."""
    out = []
    i = 0
    done = False
    while i <= len(value):
        hit = None
        if not done:
            for end in range(len(value), i - 1, -1):
                if rx.fullmatch(value, i, end):
                    hit = end
                    break
        if hit is None or (hit == i and not rx.pattern):
            if i < len(value):
                out.append(value[i])
            i += 1
            continue
        out.append(rep)
        if hit == i:
            if i < len(value):
                out.append(value[i])
            i += 1
        else:
            i = hit
        done = not every
    return "".join(out)


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: substitutions done and quotes removed; whitespace is kept."""
    out = _Words()
    _Lex(text, env, escape).run(out, split=False)
    return "".join(out.cur)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Several words: split on unquoted whitespace, including whitespace a variable brought."""
    out = _Words()
    _Lex(text, env, escape).run(out, split=True)
    return out.finish()


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A COPY/ADD heredoc body: substitutions only; quotes and escapes are kept (an
    escaped `$` stays escaped), as buildkit does."""
    out = _Words()
    _Lex(text, env, escape, raw=True).run(out, split=False)
    return "".join(out.cur)


def unquote(text: str, escape: str = "\\") -> str:
    """Quote removal without substitution (for instructions that do not expand)."""
    out = _Words()
    lex = _Lex(text.replace("$", "\x00"), {}, escape)
    lex.run(out, split=False)
    return "".join(out.cur).replace("\x00", "$")
