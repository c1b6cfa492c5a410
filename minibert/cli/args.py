"""Command-line flags generated from dataclasses, so that each flag is written once.

A command's arguments are the fields of one dataclass; the help text and whatever
argparse needs beyond the field's type and default sit in the field's metadata:

    @dataclasses.dataclass(kw_only=True)
    class SearchArgs:
        corpus: str = field(metadata={"help": "text file, one text per line"})
        top_k: int = field(default=5, metadata={"help": "neighbours shown per query"})
        query: list[str] = field(metadata={"positional": True, "nargs": "+", "help": "one or more queries"})

gives a required `--corpus CORPUS`, `--top-k TOP_K` (an int, default 5) and the positional
`query [query ...]`; after parsing, `from_namespace(SearchArgs, namespace)` is a SearchArgs.
(kw_only=True lets the fields stand in the order of --help, required ones among them.)

The rules, field -> argparse argument:

    top_k                       --top-k (metadata "flags" names it otherwise, e.g. ("-k",))
    metadata "positional"       a positional argument
    bool, default False         --x: action store_true
    bool, default True          --no-x: action store_false (still dest x; its help says what --no-x does)
    T | None = None             type T, default None (the option is optional)
    list[T]                     type T, with metadata "nargs" ("+", "*") or "action" ("append")
    no default                  required
    metadata "choices", "metavar", "nargs", "action"
                                passed on as they are
    metadata "help"             the help; "(default: X)" is added unless the help already speaks of
                                the default, or the default is None, a bool or a positional's
    metadata "group"            the heading the flag is listed under in --help (e.g. "model")
    metadata "check"            the values it takes (minibert/checks.py: positive, finite_positive, ...):
                                argparse runs the check on the converted value, so `--lr nan` stops at
                                once with `argument --lr: must be a finite number > 0, got nan`
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing

from minibert import checks

__all__ = ["add_arguments", "from_namespace", "flag_names"]

PASSED_ON = ("choices", "metavar", "nargs", "action")      # metadata keys given to argparse unchanged


def add_arguments(parser: argparse.ArgumentParser, args_class) -> None:
    """Add one argparse argument per field of the dataclass `args_class`."""
    types_of = typing.get_type_hints(args_class)        # the annotations as types (they are strings here)
    groups = {}
    for f in dataclasses.fields(args_class):
        heading = f.metadata.get("group")
        if heading is not None and heading not in groups:
            groups[heading] = parser.add_argument_group(heading)
        target = groups[heading] if heading is not None else parser
        target.add_argument(*flag_names(f), **_options(f, types_of[f.name]))


def from_namespace(args_class, namespace: argparse.Namespace):
    """The dataclass `args_class` built back from parsed arguments (one value per field)."""
    return args_class(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(args_class)})


def flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    """The names of a field's argument: ("--vocab-size",), ("--no-progress",), ("-k",) or ("text",)."""
    if f.metadata.get("positional"):
        return (f.name,)
    if "flags" in f.metadata:
        return tuple(f.metadata["flags"])
    dashed = f.name.replace("_", "-")
    return (f"--no-{dashed}",) if f.default is True else (f"--{dashed}",)


def _options(f: dataclasses.Field, annotation) -> dict:
    """The keyword arguments of `add_argument` for one field."""
    options = {key: f.metadata[key] for key in PASSED_ON if key in f.metadata}
    value_type, is_bool = _value_type(annotation)
    has_default = f.default is not dataclasses.MISSING
    if is_bool:
        options["action"] = "store_false" if f.default is True else "store_true"
    else:
        options["type"] = _converter(value_type, f.metadata.get("check"))
    if f.metadata.get("positional"):
        if has_default:
            options["default"] = f.default
    else:
        options["dest"] = f.name
        if has_default:
            options["default"] = f.default
        else:
            options["required"] = True
    options["help"] = _help(f, positional=bool(f.metadata.get("positional")), is_bool=is_bool)
    return options


def _value_type(annotation) -> tuple[type, bool]:
    """(the type one command-line value converts to, whether the field is a bool flag).

    `int | None` -> int, `list[str]` -> str (each value of nargs/append), `bool` -> a flag.
    """
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):          # int | None, Optional[int]
        not_none = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(not_none) != 1:
            raise TypeError(f"a command-line field is one type or that type | None, not {annotation}")
        annotation = not_none[0]
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    return annotation, annotation is bool


def _converter(value_type: type, check: checks.Check | None):
    """What argparse calls on each value: the type, then the field's check (if it has one).

    A value that does not convert keeps argparse's own message ("invalid int value: 'x'": the
    converter carries the type's name); one outside the check's range raises ArgumentTypeError,
    whose text argparse prints after the flag's name, with the value as it was typed.
    """
    if check is None:
        return value_type

    def convert(text: str):
        value = value_type(text)
        problem = check.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    convert.__name__ = value_type.__name__
    return convert


def _help(f: dataclasses.Field, positional: bool, is_bool: bool) -> str:
    """The field's help with "(default: X)" added where that says something; % escaped for argparse."""
    text = f.metadata.get("help", "")
    shows_default = not (positional or is_bool or f.default is None or f.default is dataclasses.MISSING
                         or "default" in text)
    if shows_default:
        text = f"{text} (default: {f.default})" if text else f"default: {f.default}"
    return text.replace("%", "%%")
