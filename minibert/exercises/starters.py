"""Starters generated from minibert's own functions: the signature kept exactly, the contract, the body removed.

One source of truth: an exercise names minibert's real functions (`Exercise.functions`); the starter
a learner edits is made from them with `inspect` at `start` time, so it can never drift from the
library. The docstring is the exercise's contract (`Exercise.contract(name)`: inputs, outputs, shapes,
the question to derive, never the result), or minibert's own where the exercise gives none. The
generated text is compiled and checked before it is written: the starter's signature must equal the
reference's and its docstring the contract (`inspect.signature(...) ==`, `__doc__ ==`).

    def layer_norm_backward(dy, cache):
        \"\"\"The contract: inputs, outputs, shapes, what to derive (verbatim)\"\"\"
        raise NotImplementedError("not implemented yet: layer_norm_backward (exercise 03)")
"""
from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["function_starter", "starter_source", "signature_line", "NOT_IMPLEMENTED"]

NOT_IMPLEMENTED = "not implemented yet"
_P = inspect.Parameter


def _annotation(fn, text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{fn.__module__}.{fn.__name__}: annotations must be strings (the module needs "
                        f"`from __future__ import annotations`) so the starter can keep them exactly")
    return text


def _default_sources(fn) -> dict[str, str]:
    """The defaults as written in minibert's source ("1e-8", not repr's "1e-08"), when they are literals."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}
    node = tree.body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return {}
    args = node.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    out = {}
    for arg, expr in pairs:
        try:
            ast.literal_eval(expr)
        except ValueError:
            continue                        # a name such as IGNORE_INDEX: the starter writes its value
        out[arg.arg] = ast.get_source_segment(source, expr) or ast.unparse(expr)
    return out


def _default(fn, name, value, written=None) -> str:
    text = written if written is not None else repr(value)
    try:
        same = eval(text, {}) == value          # noqa: S307 - our own repr of a literal default
    except Exception:
        same = False
    if not same:
        raise ValueError(f"{fn.__name__}: the default of {name!r} ({text}) is not a literal the starter can copy")
    return text


def _parameters(fn) -> list[str]:
    sig = inspect.signature(fn)
    parts, star_done = [], False
    params = list(sig.parameters.values())
    written = _default_sources(fn)
    for i, p in enumerate(params):
        if p.kind is _P.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        text = p.name
        if p.kind is _P.VAR_POSITIONAL:
            text, star_done = "*" + p.name, True
        elif p.kind is _P.VAR_KEYWORD:
            text = "**" + p.name
        if p.annotation is not _P.empty:
            text += ": " + _annotation(fn, p.annotation)
        if p.default is not _P.empty:
            text += (" = " if p.annotation is not _P.empty else "=") + _default(fn, p.name, p.default,
                                                                                 written.get(p.name))
        parts.append(text)
        if p.kind is _P.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind is not _P.POSITIONAL_ONLY):
            parts.append("/")
    return parts


def _def_line(fn, width: int = 100) -> str:
    sig = inspect.signature(fn)
    ret = "" if sig.return_annotation is _P.empty else " -> " + _annotation(fn, sig.return_annotation)
    parts = _parameters(fn)
    head = f"def {fn.__name__}("
    one = head + ", ".join(parts) + ")" + ret + ":"
    if len(one) <= width:
        return one
    lines, line = [], head
    for i, part in enumerate(parts):
        piece = part + (", " if i + 1 < len(parts) else ")" + ret + ":")
        if len(line) + len(piece.rstrip()) > width and line.strip() != head.strip():
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece
    lines.append(line)
    return "\n".join(lines)


def signature_line(fn) -> str:
    """`name(a, b: int = 1) -> ret` as written in the source (annotations unquoted)."""
    sig = inspect.signature(fn)
    ret = "" if sig.return_annotation is _P.empty else " -> " + _annotation(fn, sig.return_annotation)
    return f"{fn.__name__}({', '.join(_parameters(fn))}){ret}"


def _doc_literal(doc: str) -> str:
    if '"""' in doc or doc.endswith('"'):
        raise ValueError("docstring with triple quotes: cannot be copied verbatim")
    prefix = "r" if "\\" in doc else ""
    return f'{prefix}"""{doc}"""'


def function_starter(fn, exercise_number: int, doc: str | None = None) -> str:
    """The starter text of one function: minibert's def line, the docstring `doc` (the exercise's contract;
    default minibert's own), then `raise NotImplementedError`."""
    doc = fn.__doc__ if doc is None else doc
    if not doc:
        raise ValueError(f"{fn.__name__} has no docstring: an exercise's function must document its shapes")
    text = (f"{_def_line(fn)}\n"
            f"    {_doc_literal(doc)}\n"
            f"    # Your code here: replace the line below.\n"
            f"    raise NotImplementedError(\"{NOT_IMPLEMENTED}: {fn.__name__} (exercise {exercise_number:02d})\")\n")
    _verify(fn, text, doc)
    return text


def _verify(fn, text: str, doc: str) -> None:
    """Compile the starter text and check its signature equals the reference's and its docstring is `doc`."""
    namespace: dict = {}
    exec(compile("from __future__ import annotations\n" + text, f"<starter {fn.__name__}>", "exec"), namespace)
    made = namespace[fn.__name__]
    if inspect.signature(made) != inspect.signature(fn) or made.__doc__ != doc:
        raise AssertionError(f"the starter of {fn.__name__} does not reproduce its signature and docstring")


def starter_source(exercise) -> str:
    """The whole starter file of an exercise: a header, the allowed imports, one blank function each."""
    names = ", ".join(exercise.function_names)
    modules = ", ".join(sorted({f.__module__.replace(".", "/") + ".py" for f in exercise.functions}))
    own = {name for name, _ in exercise.contracts}
    if own >= set(exercise.function_names):
        whose = (f"The signatures are minibert's own ({modules}); the docstrings are the contract (inputs, "
                 f"outputs, shapes, what the cache holds, the question to derive), not the result. Keep the "
                 f"signatures as they are, the grader calls your functions that way. What is computed, the "
                 f"derivation, hints and questions:")
    elif own:
        whose = (f"The signatures are minibert's own ({modules}); the docstrings are the contract, or "
                 f"minibert's own where the exercise has none. Keep the signatures as they are, the grader "
                 f"calls your functions that way. What is computed, the derivation, hints and questions:")
    else:
        whose = (f"The signatures and docstrings are minibert's own ({modules}): keep them as they are, the "
                 f"grader calls your functions that way. Statement, math and hints:")
    intro = (f"Write the body of {'each function' if len(exercise.functions) > 1 else 'the function'} below "
             f"({names}). {whose} notebooks/exercises/{exercise.stem}.ipynb. Grade your work with")
    header = (f'"""Exercise {exercise.number:02d}: {exercise.title}.\n\n' + textwrap.fill(intro, 100) + "\n\n"
              f"    python -m minibert.exercises check . {exercise.name}\n"
              '"""\n')
    body = "\n\n".join(function_starter(f, exercise.number, exercise.contract(f.__name__))
                       for f in exercise.functions)
    imports = f"{exercise.imports.strip()}\n\n\n" if exercise.imports.strip() else "\n"
    return f"{header}from __future__ import annotations\n\n{imports}{body}"
