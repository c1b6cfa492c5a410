"""minibert's own exception types: what went wrong is the user's to fix, and the message says how.

Every error minibert raises on purpose for bad input (a missing file, a malformed
config, an option out of range, a loss that became NaN) is a `MinibertError`.
Library code only raises them; the command line (`minibert/cli/`) is the one place
that catches them and turns them into one line, `error: <message>`, and an exit
code: 2 for bad input, 3 for a non-finite loss. Anything else that escapes is a
bug in minibert and keeps its traceback.

Each specific error lives beside the code that raises it (`ConfigError` in
model/config.py, `CheckpointError` in model/io.py, ...) and keeps the built-in
base class it always had, so `except ValueError` / `except RuntimeError` written
before these classes existed still catches it.

This module is the bottom of minibert's layers: it imports nothing from minibert,
so every layer may import it.
"""
from __future__ import annotations

__all__ = ["MinibertError", "InputError"]


class MinibertError(Exception):
    """An error minibert raises on purpose; the message is written for the user.

    `exit_code` is the command line's exit status for it: 2, as for a bad
    command-line flag (argparse's own code), unless a subclass says otherwise.
    """

    exit_code = 2


class InputError(MinibertError, ValueError):
    """Bad input: an option, a text or a file that minibert cannot work with (a ValueError too)."""
