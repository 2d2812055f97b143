"""Build output in podman's and buildah's words: `STEP n/m: INSTRUCTION`, `--> Using cache
<id>`, `--> <id>`, the RUN output as it comes, `COMMIT name`, `Successfully tagged ...`
and the image ID last (the only line with -q)."""

from __future__ import annotations

import sys
from typing import IO


class Progress:
    def __init__(self, quiet: bool = False, out: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = sys.stderr
        self.captured = bytearray()

    def _line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def step(self, stage: int, stages: int, n: int, m: int, text: str) -> None:
        prefix = f"[{stage}/{stages}] " if stages > 1 else ""
        self._line(f"{prefix}STEP {n}/{m}: {text}")

    def cached(self, image_id: str) -> None:
        self._line(f"--> Using cache {image_id}")

    def done(self, image_id: str) -> None:
        self._line(f"--> {image_id[:12]}")

    def output(self, data: bytes) -> None:
        """RUN output: streamed, or with -q kept to be shown if the step fails."""
        if self.quiet:
            self.captured += data
            return
        self.out.flush()
        buf = getattr(self.out, "buffer", None)
        if buf is not None:
            buf.write(data)
            buf.flush()
        else:
            self.out.write(data.decode("utf-8", "replace"))
            self.out.flush()

    def failed_output(self) -> None:
        if self.quiet and self.captured:
            self.err.write(self.captured.decode("utf-8", "replace"))
            self.err.flush()

    def warn(self, text: str) -> None:
        self.err.write(f"WARN: {text}\n")
        self.err.flush()

    def commit(self, name: str) -> None:
        """`COMMIT NAME`; `[n/n] COMMIT NAME` in a multi-stage build, as buildah."""
        prefix, sep, rest = name.rpartition("] ")
        self._line(f"{prefix}{sep}COMMIT {rest}".rstrip())

    def tagged(self, name: str) -> None:
        self._line(f"Successfully tagged {name}")

    def final(self, image_id: str) -> None:
        self.out.write(image_id + "\n")
        self.out.flush()
