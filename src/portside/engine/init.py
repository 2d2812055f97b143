"""`--init`: a minimal reaping init (PID 1 that forwards signals and reaps zombies).

No tini or catatonit is packaged here, so the engine builds its own small static
one from C source kept in the package, once per root, with the system's cc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from portside.errors import RuntimeFailure

INIT_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;

static void forward(int sig) { if (child > 0) kill(child, sig); }

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
    if (first >= argc) { fprintf(stderr, "portside-init: no command\n"); return 125; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD) sigaction(s, &sa, NULL);
    child = fork();
    if (child < 0) { perror("portside-init: fork"); return 125; }
    if (child == 0) {
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < 32; s++)
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &sa, NULL);
        setpgid(0, 0);
        tcsetpgrp(0, getpid());
        execvp(argv[first], argv + first);
        fprintf(stderr, "portside-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) { if (errno == EINTR) continue; return 125; }
        if (pid == child) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        }
    }
}
"""


def ensure_init(root: Path) -> str:
    """ROOT/libexec/portside-init, built on first use."""
    target = root / "libexec" / "portside-init"
    if target.is_file():
        return str(target)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeFailure("--init: no C compiler to build the init (install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = target.with_name(f".init-{os.getpid()}.c")
    tmp = target.with_name(f".init-{os.getpid()}")
    src.write_text(INIT_C)
    try:
        proc = subprocess.run(
            [cc, "-static", "-O2", "-o", str(tmp), str(src)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeFailure(f"--init: building the init failed: {proc.stderr.strip()[-300:]}")
        os.replace(tmp, target)
    finally:
        for p in (src, tmp):
            if p.exists():
                p.unlink()
    return str(target)
