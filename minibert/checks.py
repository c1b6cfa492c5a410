"""The ranges of settings, declared once beside each setting and checked before any work.

A setting of a run is a field of a dataclass (PretrainArgs, FinetuneArgs, the arguments of a
command); the field says which values it takes with a check in its metadata:

    steps: int = field(default=1000, metadata={"check": positive, "help": "optimizer steps"})
    lr: float = field(default=1e-3, metadata={"check": finite_positive, "help": "peak learning rate"})

Two places read the check, so neither the command line nor a library caller can start a run with
a value that cannot work (`--steps 0` writing an untrained model, `--lr nan` failing at step 2,
`--eval-every 0` dividing by zero an hour in):

    the command line  cli/args.py gives argparse a converter that runs the check, so argparse
                      reports `argument --lr: must be a finite number > 0, got nan`
    library callers   `check_fields(args)` in the dataclass's __post_init__ raises SettingError
                      (an InputError) with the same words

The checks, each a `Check` whose `what` completes "must be ...":

    positive              an integer >= 1 (counts: steps, batch size, epochs, top-k, ...)
    non_negative          an integer >= 0 (0 means "off": --eval-every 0, --freeze-layers 0)
    at_least(n)           an integer >= n (--seq-len: room for [CLS] A [SEP] B [SEP])
    finite_positive       a finite number > 0 (a learning rate)
    finite_non_negative   a finite number >= 0 (weight decay, a clipping norm where 0 is off)
    fraction              a number in (0, 1) (a share that cannot be none or all: held-out documents)
    below_one             a number in [0, 1) (warm-up, dropout: 0 is off, 1 would be all)
    probability           a number in [0, 1]

An optional setting (`int | None = None`) is checked only when it is given.

Settings read back from a file (a run's run.json, for --resume) have not been through argparse:
`field_problem(field, value)` checks their type (from the annotation) and choices as well, and
`settings_from_json(saved, args_class, path, error)` checks a whole run.json against the dataclass
of its settings (an object, no unknown or missing setting, every value fits its field), and
`check_unchanged(args, saved, ...)` names every setting a --resume was given that is not the run's.

The other thing every reader of a user's file checks is here too: `decode_utf8(data, path)` decodes
the bytes of a text file, and bytes that are not UTF-8 (a Latin-1 CSV from a spreadsheet) are an
error naming the file and the line, never U+FFFD characters slipped into the text without a word.

This module is at the bottom of minibert's layers with errors.py: it imports nothing but that.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

from minibert.errors import InputError

__all__ = ["Check", "SettingError", "at_least", "positive", "non_negative", "finite_positive", "finite_non_negative",
           "in_range", "fraction", "below_one", "probability", "check_fields", "field_problem", "flag_of", "flag_name",
           "settings_from_json", "check_unchanged",
           "NotUTF8Error", "decode_utf8"]


class SettingError(InputError):
    """A setting (a flag of the command line) outside the values it can take."""


@dataclasses.dataclass(frozen=True)
class Check:
    """What a value must be, in words (`what`: "an integer >= 1"), and the test of it."""
    what: str
    holds: Callable[[object], bool]

    def problem(self, value) -> str | None:
        """None if `value` is fine, else "must be <what>"."""
        return None if self.holds(value) else f"must be {self.what}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(n: int) -> Check:
    """An integer >= n."""
    return Check(f"an integer >= {n}", lambda v: _is_int(v) and v >= n)


positive = at_least(1)
non_negative = at_least(0)
finite_positive = Check("a finite number > 0", lambda v: _is_number(v) and math.isfinite(v) and v > 0)
finite_non_negative = Check("a finite number >= 0", lambda v: _is_number(v) and math.isfinite(v) and v >= 0)


def in_range(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A number between low and high; an open end excludes that end: in_range(0, 1, high_open=True) is [0, 1)."""
    def holds(v) -> bool:          # NaN fails every comparison, so it never holds
        return (_is_number(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high))
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return Check(f"a number in {interval}", holds)


fraction = in_range(0, 1, low_open=True, high_open=True)
below_one = in_range(0, 1, high_open=True)
probability = in_range(0, 1)


def flag_name(name: str) -> str:
    """The command-line flag of a setting's name: train_limit -> --train-limit."""
    return "--" + name.replace("_", "-")


def flag_of(f: dataclasses.Field) -> str:
    """The command-line name of a field: its metadata "flags", else --name-with-dashes (a positional: its name)."""
    if f.metadata.get("positional"):
        return f.name
    if "flags" in f.metadata:
        return f.metadata["flags"][0]
    return flag_name(f.name)


def check_fields(settings) -> None:
    """Raise SettingError for the first field of the dataclass `settings` outside its declared check.

    The message names the flag and the value, as argparse's would: `--lr: must be a finite number > 0,
    got nan`. A list's items are checked one by one; None (an optional setting not given) passes.
    """
    for f in dataclasses.fields(settings):
        check = f.metadata.get("check")
        if check is None:
            continue
        value = getattr(settings, f.name)
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            problem = check.problem(item)
            if problem is not None:
                raise SettingError(f"{flag_of(f)}: {problem}, got {item!r}")


_TYPES = {                     # the annotations a setting may have, what each accepts and its words
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "None": (lambda v: v is None, "null"),
}


def field_problem(f: dataclasses.Field, value) -> str | None:
    """None if `value` fits the field `f` (its type, its "choices", its "check"), else "must be ...".

    For settings read back from a file (a run's run.json), where nothing like argparse has converted
    them: a string where a number belongs, or a bool where a string does, is caught here, before it
    fails deep in a run. The type is read off the annotation (int, float, str, bool, unions of them
    with None); a field with any other annotation is checked on its choices and check only.
    """
    names = [name.strip() for name in str(f.type).split("|")]
    if all(name in _TYPES for name in names) and not any(_TYPES[name][0](value) for name in names):
        return "must be " + " or ".join(_TYPES[name][1] for name in names)
    choices = f.metadata.get("choices")
    if choices is not None and value is not None and value not in choices:
        return f"must be one of {', '.join(map(str, choices))}"
    check = f.metadata.get("check")
    return check.problem(value) if check is not None and value is not None else None


def settings_from_json(saved, args_class, path, error: type[Exception], *, command: str,
                       ignore: tuple[str, ...] = ()) -> dict:
    """The settings `saved` (a run's run.json, read as JSON from `path`) as keyword arguments of the
    dataclass `args_class`, checked: an object (else "was not written by `minibert <command>`"), no
    setting the class does not know (but the names in `ignore`, which are dropped: records of the run
    kept beside its settings), none it needs missing, each value fitting its field. Every problem is an
    `error` naming the file: a run.json edited by hand, or written by another program or version, is
    stopped here, not deep in a resumed run."""
    if not isinstance(saved, dict):
        raise error(f"{path} should hold a JSON object of settings, got {type(saved).__name__}; "
                    f"it was not written by `minibert {command}`")
    fields = {f.name: f for f in dataclasses.fields(args_class)}
    unknown = sorted(set(saved) - set(fields) - set(ignore))
    if unknown:
        raise error(f"{path} holds settings this minibert does not know ({', '.join(unknown)}); "
                    f"was it written by another program or version?")
    missing = sorted(name for name, f in fields.items() if name not in saved and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise error(f"{path} lacks the settings {', '.join(missing)} (edited by hand?)")
    for name, value in saved.items():
        problem = field_problem(fields[name], value) if name in fields else None
        if problem is not None:
            raise error(f"{path}: {name} {problem}, got {value!r} (edited by hand?)")
    return {name: value for name, value in saved.items() if name in fields}


def check_unchanged(args, saved, run_json, may_change: tuple[str, ...], error: type[Exception]) -> None:
    """--resume: `args` (a dataclass of settings) must be the run's `saved` ones (the same dataclass, read
    from `run_json`) but for the settings in `may_change` (and the run's folder and the progress bar,
    which change no number); else `error` naming every one that differs: "--lr 0.1 (the run's: 3e-05)"."""
    fixed = [f"{flag_name(name)} {value} (the run's: {getattr(saved, name)})"
             for name, value in dataclasses.asdict(args).items()
             if name not in (*may_change, "progress", "out") and value != getattr(saved, name)]
    if fixed:
        raise error(f"--resume keeps the settings in {run_json}, but got {', '.join(fixed)}; only "
                    f"{', '.join(map(flag_name, may_change))} may change: drop the others, or start a new run "
                    f"with another --out")


# -- text files ---------------------------------------------------------------------------------

class NotUTF8Error(InputError):
    """A text file whose bytes are not UTF-8; the message names the file and the line."""


def decode_utf8(data: bytes, path) -> str:
    """The text of a file's bytes, or NotUTF8Error naming the file, the line and what to do."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise NotUTF8Error(f"{path}, line {line}: not UTF-8 (byte 0x{data[err.start]:02x}: {err.reason}); "
                           f"convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`, or save it as "
                           f"UTF-8 in the editor or spreadsheet)") from None
