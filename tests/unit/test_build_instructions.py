"""Typed instructions: every keyword and flag, and the one-line errors for bad ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from portside.build.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_all,
    parse_duration,
    run_command,
)
from portside.build.dockerfile.parser import parse
from portside.errors import DockerfileSyntaxError


def one(line: str) -> Instruction:
    ins = parse_all(parse(f"FROM scratch\n{line}\n", "Containerfile"))
    return ins[-1]


def bad(line: str, pattern: str) -> None:
    with pytest.raises(DockerfileSyntaxError, match=pattern) as e:
        parse_all(parse(f"FROM scratch\n{line}\n", "Containerfile"))
    assert e.value.args[0].startswith("Containerfile:2: ")
    assert "\n" not in e.value.args[0]


def test_from_forms() -> None:
    f = parse_all(parse("FROM --platform=linux/arm64 alpine:3 AS Build\n"))[0]
    assert isinstance(f, From)
    assert (f.image, f.name, f.platform) == ("alpine:3", "build", "linux/arm64")
    f2 = parse_all(parse("from scratch as x\n"))[0]
    assert isinstance(f2, From) and f2.name == "x"
    for text, msg in [
        ("FROM a b\n", "expected FROM"),
        ("FROM a IS b\n", "expected AS"),
        ("FROM\n", "expected FROM"),
        ("FROM --platfrm=x a\n", "unknown flag: --platfrm"),
        ("FROM a AS 1bad\n", "invalid stage name"),
    ]:
        with pytest.raises(DockerfileSyntaxError, match=r"^Dockerfile:1: FROM: " + msg):
            parse_all(parse(text))


def test_run_shell_exec_and_flags() -> None:
    r = one("RUN echo hi && ls")
    assert isinstance(r, Run)
    assert r.command.shell and r.command.args == ("echo hi && ls",)
    assert r.command.resolve(["/bin/sh", "-c"]) == ["/bin/sh", "-c", "echo hi && ls"]
    e = one('RUN ["/bin/echo", "a b"]')
    assert isinstance(e, Run) and not e.command.shell
    assert e.command.resolve(["/bin/sh", "-c"]) == ["/bin/echo", "a b"]
    not_json = one("RUN [not json")
    assert isinstance(not_json, Run) and not_json.command.shell
    n = one("RUN --network=none --security=insecure true")
    assert isinstance(n, Run) and (n.network, n.security) == ("none", "insecure")
    assert isinstance(one("RUN --network=host true"), Run)


def test_run_mounts_parsed_and_validated() -> None:
    r = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1"
        " --mount=type=bind,from=build,source=/out,target=/in,ro"
        " --mount=type=tmpfs,dst=/tmp,size=64m"
        " --mount=type=secret,id=tok,required"
        " --mount=target=/plain true"
    )
    assert isinstance(r, Run)
    kinds = [m.type for m in r.mounts]
    assert kinds == ["cache", "bind", "tmpfs", "secret", "bind"]
    cache, bind, tmpfs, secret, plain = r.mounts
    assert cache.get("target") == "/root/.cache" and cache.get("sharing") == "locked"
    assert bind.get("from") == "build" and bind.get("ro") == "true"
    assert tmpfs.get("target") == "/tmp" and tmpfs.get("size") == "64m"
    assert secret.get("id") == "tok" and secret.get("required") == "true"
    assert plain.get("target") == "/plain"


@pytest.mark.parametrize(
    ("flag", "msg"),
    [
        ("--network=bridge", "--network must be default, none or host"),
        ("--network", "--network requires a value"),
        ("--security=x", "--security must be"),
        ("--mount=type=nfs,target=/x", "unknown type 'nfs'"),
        ("--mount=type=cache", "type=cache requires target"),
        ("--mount=type=tmpfs,target=/x,from=y", "unknown option 'from' for type=tmpfs"),
        ("--mount=type=cache,target=/x,sharing=all", "sharing must be"),
        ("--mount=type=cache,target=/x,uid=root", "uid must be a number"),
        ("--mount=type=cache,target=/x,mode=999", "mode must be octal"),
        ("--mount=type=secret", "requires id or target"),
        ("--mount=type=bind,target=/x,ro=maybe", "ro expects true or false"),
        ("--mount=type=tmpfs,target=/x,size=lots", "bad tmpfs size"),
        ("--bogus=1", "unknown flag: --bogus"),
    ],
)
def test_run_flag_errors(flag: str, msg: str) -> None:
    bad(f"RUN {flag} true", "RUN: .*" + msg)


def test_run_requires_a_command_unless_heredoc() -> None:
    bad("RUN", "RUN: requires at least one argument")
    bad("RUN []", "requires at least one argument")
    ins = parse_all(parse("FROM x\nRUN <<EOF\necho\nEOF\n"))[1]
    assert isinstance(ins, Run) and ins.heredocs[0].content == "echo\n"


def test_cmd_and_entrypoint() -> None:
    c = one('CMD ["a", "b"]')
    assert isinstance(c, Cmd) and c.command.args == ("a", "b") and not c.command.shell
    e = one("ENTRYPOINT exec x")
    assert isinstance(e, Entrypoint) and e.command.shell
    empty = one("CMD []")
    assert isinstance(empty, Cmd) and empty.command.args == ()
    bad("CMD --x=1 a", "CMD: unknown flag: --x")


def test_env_forms() -> None:
    e = one('ENV a=1 b="two words" c=')
    assert isinstance(e, Env) and e.pairs == (("a", "1"), ("b", '"two words"'), ("c", ""))
    legacy = one("ENV name  value with  spaces")
    assert isinstance(legacy, Env) and legacy.pairs == (("name", "value with  spaces"),)
    bad("ENV onlyname", "ENV: must have two arguments")
    bad("ENV a=1 b", "ENV: can't find = in 'b'")
    bad("ENV", "ENV: requires at least one argument")
    bad("ENV =x", "empty name")


def test_label_forms() -> None:
    lab = one('LABEL "com.x.y"="v 1" multi.line=a')
    assert isinstance(lab, Label) and lab.pairs == (('"com.x.y"', '"v 1"'), ("multi.line", "a"))
    bad("LABEL k", "must have two arguments")


def test_arg_forms() -> None:
    a = one("ARG A B=2 C=")
    assert isinstance(a, Arg) and a.pairs == (("A", None), ("B", "2"), ("C", ""))
    bad("ARG", "ARG: requires at least one argument")
    bad("ARG 1x=2", "invalid name")


def test_expose_user_workdir_stopsignal_maintainer() -> None:
    assert isinstance(x := one("EXPOSE 80 443/tcp $P"), Expose)
    assert x.ports == ("80", "443/tcp", "$P")
    assert isinstance(u := one("USER app:grp"), User) and u.user == "app:grp"
    assert isinstance(w := one("WORKDIR /a b"), Workdir) and w.path == "/a b"
    assert isinstance(s := one("STOPSIGNAL SIGKILL"), StopSignal) and s.signal == "SIGKILL"
    assert isinstance(m := one("MAINTAINER Jo <j@x>"), Maintainer) and m.name == "Jo <j@x>"
    bad("USER", "USER: requires exactly one argument")
    bad("WORKDIR", "WORKDIR: requires exactly one argument")
    bad("STOPSIGNAL a b", "STOPSIGNAL: requires exactly one argument")
    bad("EXPOSE", "EXPOSE: requires at least one argument")


def test_copy_flags() -> None:
    c = one(
        "COPY --from=build --chown=1:2 --chmod=0644 --link --parents"
        " --exclude=*.md --exclude=tmp a b/* /dst/"
    )
    assert isinstance(c, Copy) and not isinstance(c, Add)
    assert c.sources == ("a", "b/*") and c.dest == "/dst/"
    assert (c.from_, c.chown, c.chmod, c.link, c.parents) == ("build", "1:2", "0644", True, True)
    assert c.excludes == ("*.md", "tmp")
    j = one('COPY ["a b", "/d e/"]')
    assert isinstance(j, Copy) and j.sources == ("a b",) and j.dest == "/d e/" and j.json_form
    sym = one("COPY --chmod=u+rwx,go=rx a /b")
    assert isinstance(sym, Copy) and sym.chmod == "u+rwx,go=rx"
    link_false = one("COPY --link=false a /b")
    assert isinstance(link_false, Copy) and not link_false.link


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("COPY --chown a /b", "COPY: --chown requires a value"),
        ("COPY --chown= a /b", "COPY: --chown requires a value"),
        ("COPY --chmod=abc a /b", "COPY: --chmod: invalid mode"),
        ("COPY --link=perhaps a /b", "--link expects true or false"),
        ("COPY a", "COPY: requires at least two arguments"),
        ("COPY --from=a --from=b x /y", "--from given twice"),
        ("COPY --checksum=sha256:ab a /b", "COPY: unknown flag: --checksum"),
        ("ADD --from=x a /b", "ADD: unknown flag: --from"),
        ("ADD --checksum=sha256:ab local /b", "only be used with HTTP"),
        ("ADD --checksum=md5:ab https://x/y /b", "expected sha256"),
    ],
)
def test_copy_add_errors(line: str, msg: str) -> None:
    bad(line, msg)


def test_add_flags() -> None:
    a = one(
        "ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d"
        " https://example.com/a.tar.gz /x"
    )
    assert isinstance(a, Add) and a.checksum and a.checksum.startswith("sha256:")
    g = one("ADD --keep-git-dir=true --unpack=false git@github.com:a/b.git /src")
    assert isinstance(g, Add) and g.keep_git_dir and g.unpack is False
    assert isinstance(plain := one("ADD a.tar /x"), Add) and plain.unpack is None


def test_copy_heredoc_source() -> None:
    ins = parse_all(parse("FROM x\nCOPY --chmod=755 <<EOF /usr/bin/hello\necho hi\nEOF\n"))[1]
    assert isinstance(ins, Copy)
    assert ins.sources == ("<<EOF",) and ins.dest == "/usr/bin/hello"
    assert ins.heredocs[0].content == "echo hi\n"


def test_volume_forms() -> None:
    v = one("VOLUME /a /b")
    assert isinstance(v, Volume) and v.paths == ("/a", "/b") and not v.json_form
    j = one('VOLUME ["/c", "/d e"]')
    assert isinstance(j, Volume) and j.paths == ("/c", "/d e") and j.json_form
    bad("VOLUME", "can not be an empty string")
    bad('VOLUME [""]', "can not be an empty string")


def test_healthcheck() -> None:
    h = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s"
        " --retries=4 CMD curl -f http://x/"
    )
    assert isinstance(h, Healthcheck)
    assert h.test == ("CMD-SHELL", "curl -f http://x/")
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        90 * 10**9,
        500 * 10**6,
        2 * 10**9,
        10**9,
        4,
    )
    ex = one('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(ex, Healthcheck) and ex.test == ("CMD", "/bin/check", "-q")
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("HEALTHCHECK --interval=10 CMD x", "--interval: invalid duration"),
        ("HEALTHCHECK --timeout=10us CMD x", "--timeout cannot be less than 1ms"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
        ("HEALTHCHECK --retries=x CMD x", "--retries: not a number"),
        ("HEALTHCHECK NONE extra", "NONE takes no other arguments"),
        ("HEALTHCHECK --retries=1 NONE", "NONE takes no other arguments"),
        ("HEALTHCHECK RUN x", "expected CMD or NONE"),
        ("HEALTHCHECK CMD", "requires at least one argument"),
        ("HEALTHCHECK --every=1s CMD x", "unknown flag: --every"),
    ],
)
def test_healthcheck_errors(line: str, msg: str) -> None:
    bad(line, "HEALTHCHECK: " + msg)


def test_parse_duration() -> None:
    assert parse_duration("0") == 0
    assert parse_duration("1h2m3.5s") == (3600 + 120 + 3.5) * 10**9
    assert parse_duration("250us") == 250_000
    with pytest.raises(ValueError):
        parse_duration("5")
    with pytest.raises(ValueError):
        parse_duration("")


def test_shell() -> None:
    s = one('SHELL ["powershell", "-command"]')
    assert isinstance(s, Shell) and s.args == ("powershell", "-command")
    bad("SHELL /bin/sh -c", "SHELL: requires the JSON form")


def test_onbuild_nesting_rules() -> None:
    o = one("ONBUILD RUN --network=none echo hi")
    assert isinstance(o, Onbuild) and o.expression == "RUN --network=none echo hi"
    assert isinstance(o.trigger, Run) and o.trigger.network == "none"
    bad("ONBUILD ONBUILD RUN x", "ONBUILD: chaining ONBUILD via ONBUILD ONBUILD isn't allowed")
    bad("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger")
    bad("ONBUILD maintainer x", "MAINTAINER isn't allowed")
    bad("ONBUILD", "requires an instruction")
    bad("ONBUILD COPY --chown a b", "COPY: --chown requires a value")


def test_unknown_instruction_names_line() -> None:
    bad("FETCH x", "FETCH: unknown instruction")


def test_error_line_is_the_first_line_of_a_continued_instruction() -> None:
    text = "FROM scratch\nENV a=1\nCOPY \\\n  --chown \\\n  a /b\n"
    with pytest.raises(DockerfileSyntaxError) as e:
        parse_all(parse(text, "Containerfile"))
    assert str(e.value) == "Containerfile:3: COPY: --chown requires a value"


def _run_it(text: str, cwd: Path) -> None:
    ins = parse_all(parse("FROM x\n" + text))[1]
    assert isinstance(ins, Run)
    rc = run_command(ins, ["/bin/sh", "-c"])
    argv = rc.argv
    if rc.script is not None:
        script = cwd / "script"
        script.write_text(rc.script)
        script.chmod(0o755)
        argv = [str(script), *rc.args]
    subprocess.run(argv, cwd=cwd, check=True, env={"PATH": "/usr/bin:/bin", "x": "X"})


def test_run_heredoc_alone_runs_its_body(tmp_path: Path) -> None:
    _run_it("RUN <<EOF\necho one > out1\necho two >> out1\nEOF\n", tmp_path)
    assert (tmp_path / "out1").read_text() == "one\ntwo\n"


def test_run_heredoc_with_shebang_runs_as_a_file(tmp_path: Path) -> None:
    _run_it('RUN <<EOF a1 "a 2"\n#!/bin/sh\nprintf "%s|" "$@" > out2\nEOF\n', tmp_path)
    assert (tmp_path / "out2").read_text() == "a1|a 2|"


def test_run_heredocs_feed_the_command_line(tmp_path: Path) -> None:
    text = "RUN cat <<A > f1 && cat <<-'B' > f2\nvalue $x\nA\n\tliteral $x\n\tB\n"
    _run_it(text, tmp_path)
    assert (tmp_path / "f1").read_text() == "value X\n"
    assert (tmp_path / "f2").read_text() == "literal $x\n"


def test_run_without_heredoc_and_exec_form() -> None:
    ins = parse_all(parse('FROM x\nRUN ["/bin/true", "a"]\n'))[1]
    assert isinstance(ins, Run)
    assert run_command(ins, ["/bin/sh", "-c"]).argv == ["/bin/true", "a"]


def test_chown_format() -> None:
    bad("COPY --chown=a:b:c x /y", "COPY: --chown: expected USER\\[:GROUP\\]")
    ok = one("COPY --chown=${U}:${G} x /y")
    assert isinstance(ok, Copy) and ok.chown == "${U}:${G}"


def test_mount_values_with_variables_wait_for_expansion() -> None:
    r = one("RUN --mount=type=cache,target=/c,uid=$UID,mode=${MODE} true")
    assert isinstance(r, Run) and r.mounts[0].get("uid") == "$UID"
    bad("RUN --mount=type=cache,target=/c,colour=$X true", "unknown option 'colour'")
