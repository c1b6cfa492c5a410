"""Run `python -m minibert ...` and SIGKILL it at a chosen moment: the Nth call of a minibert function.

    python tests/train/kill_at.py MODULE:FUNCTION N MODE -- pretrain --out runs/x ...

replaces FUNCTION in MODULE (the module whose name the caller looks it up in: `minibert.train.loop:train_step`,
not where it is defined) by a wrapper that counts the calls and, at the Nth one, kills the process
with SIGKILL, which no code can catch or clean up after, as a power cut or `kill -9` would:

    before   as the Nth call starts (the call never runs)
    after    as the Nth call returns (its work is done, nothing after it is)
    torn     the Nth call's file (its first argument that is a path) half-written under the temporary name an atomic
             writer uses (NAME.tmp, or NAME.tmp.npz for an .npz), then killed: a kill in the middle of
             the write
    cut      the Nth call's file half-written under its own name, then killed: a kill in the middle of a
             write that is not atomic (or a disk that lost the end of the file)

Nothing in minibert knows about this script: the product runs unchanged, but for the one function.
If the process is never killed (fewer than N calls), it exits as minibert does.
"""
from __future__ import annotations

import minibert.files as files
import importlib
import os
import signal
import sys
import tempfile
from pathlib import Path

from minibert.cli import main


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def half_write(real, args, kwargs, torn: bool) -> None:
    """Let `real` write its file (its first path argument) elsewhere, then put the first half of those
    bytes under the file's temporary name (torn) or its own name."""
    i = next(k for k, a in enumerate(args) if isinstance(a, (str, os.PathLike)))
    path = Path(args[i])
    with tempfile.TemporaryDirectory() as scratch:
        whole = Path(scratch) / path.name
        real(*args[:i], whole, *args[i + 1:], **kwargs)
        data = whole.read_bytes()
    (temporary_name(path) if torn else path).write_bytes(data[:len(data) // 2])


def temporary_name(path: Path) -> Path:
    """The name minibert's atomic writers give a file while it is written (minibert/files.py)."""
    return files._temporary_name(path)


def install(spec: str, n: int, mode: str) -> None:
    module_name, name = spec.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, name)
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls != n:
            return real(*args, **kwargs)
        if mode == "before":
            kill()
        if mode in ("torn", "cut"):
            half_write(real, args, kwargs, torn=mode == "torn")
            kill()
        result = real(*args, **kwargs)
        kill()                                       # mode "after"
        return result

    setattr(module, name, wrapper)


if __name__ == "__main__":
    spec, n, mode, dashes, *argv = sys.argv[1:]
    assert dashes == "--" and mode in ("before", "after", "torn", "cut"), sys.argv
    install(spec, int(n), mode)
    sys.exit(main(argv))
