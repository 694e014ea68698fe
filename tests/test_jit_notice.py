"""The first compilation of a fermixr kernel is announced once, on a terminal only."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import pytest

from fermixr._jit import ANNOUNCEMENT

# a kernel small enough to compile in about a second
SCRIPT = textwrap.dedent("""
    import numpy as np
    from fermixr.likelihood import _kernels as K
    K._units(10, 0, 2, 4, 2)
    K._units(10, 0, 2, 4, 2)
    print("done", flush=True)
""")


def _run(cache_dir, tty: bool) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    if not tty:
        p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout + p.stderr
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdin=slave,
                             stdout=slave, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:          # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert p.wait(timeout=300) == 0, b"".join(chunks).decode()
    finally:
        os.close(master)
    return b"".join(chunks).decode()


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
def test_first_compilation_announced_once_on_a_terminal(tmp_path):
    out = _run(tmp_path, tty=True)
    assert "done" in out
    assert out.count(ANNOUNCEMENT) == 1          # once, although two calls and a cold cache
    again = _run(tmp_path, tty=True)             # the kernel now loads from the cache
    assert "done" in again and ANNOUNCEMENT not in again


def test_no_announcement_when_not_a_terminal(tmp_path):
    out = _run(tmp_path, tty=False)
    assert "done" in out and ANNOUNCEMENT not in out
