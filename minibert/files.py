"""Never lose a file: atomic writes, what a folder holds, which `--out` a command may use, the run-folder lock.

Three promises, each kept here once for every command:

1. **A file is replaced whole or not at all.** Every file minibert writes goes to a temporary
   name in the same folder, is flushed to the disk (fsync), then renamed onto its real name
   (`os.replace`, atomic on POSIX and Windows). A crash, a kill or an exception leaves either the
   old version or the new one, never half a file, and the temporary is removed on failure.

       with atomic_path("runs/x/curves.png") as tmp:     # any writer that takes a path
           fig.savefig(tmp)
       with atomic_open("report.csv", "w", newline="") as f:   # any writer that takes a file
           csv.writer(f).writerows(rows)
       write_text(path, text), write_bytes(path, data), write_json(path, obj), save_figure(fig, path)

2. **An output never replaces what it should not.** `contents(path)` says what a path holds, in
   words a message can use: nothing, an empty folder, a pretraining run, a fine-tuning run, a
   model, a vocabulary, other files, or a file. `check_out_folder` and `check_out_files` are what a
   command calls before it reads or writes anything: an `--out` that holds a run of another kind,
   or is (or contains, or is inside) one of the command's inputs, is refused; one that holds an
   earlier output of the same kind is refused unless the user says `--resume` (a run) or
   `--overwrite`. A single output file may replace an earlier one, never an input, a folder, or a
   file of a run, model or vocabulary.

3. **One writer per run folder.** `RunLock` creates RUN/.lock with O_CREAT | O_EXCL (the OS
   guarantees only one process succeeds) and writes its PID, host and start time there; a second
   process is refused with those three. A lock left by a killed process (same host, PID no longer
   running; or a torn, unreadable lock file older than a few seconds) is taken over with a warning.
   `claim_run_folder` puts 2 and 3 together for `pretrain` and `finetune`.

Run kinds are read from run.json's keys: a pretraining run's has "corpus", a fine-tuning run's
"task" (the formats have always had them, so old run folders are recognised too); `distill
--pretraining` writes a pretraining run folder whose run.json has "teacher" and "ce_weight".

This module sits at the bottom of minibert's layers with errors.py: it imports nothing else from
minibert, so every layer may use it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import socket
import stat
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from minibert.errors import InputError

__all__ = ["atomic_path", "atomic_open", "write_text", "write_bytes", "write_json", "save_figure", "save_npy",
           "figure_path", "npy_path",
           "new_file_mode", "fsync_folder",
           "Contents", "contents", "PRETRAINING_RUN", "FINETUNING_RUN", "MODEL", "VOCABULARY", "ABSENT", "EMPTY",
           "FILE", "OTHER", "OutPathError", "check_out_folder", "check_out_files", "clear_folder",
           "RunLock", "FolderInUseError", "lock_holder", "claim_run_folder", "LOCK_NAME"]


# -- 1. atomic writes -------------------------------------------------------------------------------

_counter = itertools.count()          # two writes of one path in one process get two temporary names


def _temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call, that keeps path's suffix:
    runs/x/curves.png -> runs/x/.curves.png.1234-0.tmp.png (savefig reads the format off the suffix,
    numpy.savez adds .npz to a name without it)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{next(_counter)}.tmp{path.suffix}")


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-\d+\.tmp(\.[^.]*)?$")   # _temporary_name's names


def remove_dead_temporaries(folder) -> list[Path]:
    """Remove, anywhere under `folder`, the temporaries of atomic writes whose process is gone (killed
    mid-write: its file was never renamed into place, so nothing is lost). Returns what was removed.
    Call it only while holding the folder's lock: a live writer's temporary is never touched."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in sorted(folder.rglob(".*.tmp*")):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def new_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process's umask (0o644 under umask 022)."""
    umask = os.umask(0o022)           # reading the umask means setting it: put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_file(path: Path) -> None:
    """Flush a written file's bytes to the disk, so the rename that follows never points at nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path) -> None:
    """Make the renames in a folder durable (best effort: not every OS lets one fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path to write `path` through: on success it is fsynced, given the mode of the file it
    replaces (or of any new file) and renamed onto `path`; on any exception it is removed and `path` is
    left as it was. The folder must exist."""
    path = Path(path)
    tmp = _temporary_name(path)
    mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else new_file_mode()
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, mode)           # a writer's own temporary may be private (safetensors': 0600)
        os.replace(tmp, path)         # atomic: a reader sees the old file or the new one, never a mix
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """`open(path, mode)` written atomically (see atomic_path); text modes default to UTF-8."""
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path, text: str, newline: str | None = "\n") -> Path:
    """Write `text` (UTF-8, "\\n" line endings on every OS) atomically; return the path."""
    with atomic_open(path, "w", newline=newline) as f:
        f.write(text)
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path, obj, indent: int = 2, sort_keys: bool = True, ensure_ascii: bool = True) -> Path:
    """`obj` as JSON (indented, keys sorted: a diff of two files is readable), atomically."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + "\n")


def figure_path(path) -> Path:
    """Where savefig writes `path`: a name without a suffix gets .png, as matplotlib gives it."""
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + ".png")


def npy_path(path) -> Path:
    """Where numpy.save writes `path`: a name not ending in .npy gets it added, as numpy does."""
    path = Path(path)
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")


def save_figure(fig, path, **savefig_kwargs) -> Path:
    """`fig.savefig(path)` atomically, at figure_path(path); returns where it went."""
    path = figure_path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return path


def save_npy(path, array) -> Path:
    """`numpy.save(path, array)` atomically, at npy_path(path); returns where it went."""
    import numpy                      # NumPy only where an array is written: this module stays stdlib-only

    path = npy_path(path)
    with atomic_open(path, "wb") as f:
        numpy.save(f, array)
    return path


# -- 2. what a path holds -----------------------------------------------------------------------------

ABSENT, EMPTY, FILE = "nothing", "empty folder", "file"
PRETRAINING_RUN, FINETUNING_RUN = "pretraining run", "fine-tuning run"
MODEL, VOCABULARY, OTHER = "model", "vocabulary", "other files"
RUNS = (PRETRAINING_RUN, FINETUNING_RUN)
LOCK_NAME = ".lock"
HIDDEN = (LOCK_NAME, LOCK_NAME + ".takeover")     # the lock's own files do not count as contents


@dataclasses.dataclass(frozen=True)
class Contents:
    """What a path holds. kind: one of the constants above; words: the same for a message
    ("a pretraining run (2 checkpoints, up to step 8)"); started: a run that trained (a checkpoint,
    weights, a best model, metrics or a log), which only --resume or --overwrite may touch."""
    path: Path
    kind: str
    words: str
    started: bool = False


def contents(path) -> Contents:
    """What `path` holds, read from the names of its files (run.json's keys tell the run kinds apart)."""
    path = Path(path)
    if not path.exists():
        return Contents(path, ABSENT, "nothing (it does not exist)")
    if not path.is_dir():
        return Contents(path, FILE, f"a file of {path.stat().st_size:,} bytes")
    names = sorted(p.name for p in path.iterdir() if p.name not in HIDDEN)
    if not names:
        return Contents(path, EMPTY, "an empty folder")
    if "run.json" in names:
        return _run_contents(path)
    if "config.json" in names and "model.safetensors" in names:
        return Contents(path, MODEL, "a model (config.json, model.safetensors)")
    if "vocab.txt" in names:
        n = _count_lines(path / "vocab.txt")
        return Contents(path, VOCABULARY, f"a vocabulary (vocab.txt, {n:,} token{'s' if n != 1 else ''})")
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return Contents(path, OTHER, f"{len(names)} other file{'s' if len(names) > 1 else ''} ({shown})")


def _run_contents(path: Path) -> Contents:
    """A run folder: its kind from run.json's keys, what it has done from its files."""
    try:
        settings = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        settings = None
    distilled = isinstance(settings, dict) and {"teacher", "ce_weight"} <= set(settings)   # distill --pretraining
    if not isinstance(settings, dict) or not ({"corpus", "task"} & set(settings) or distilled):
        return Contents(path, OTHER, "a run.json that names no corpus and no task (damaged, or not minibert's)",
                        started=True)
    if "task" in settings:          # (a fine-tuning run writes its log from step 1, before any checkpoint)
        done = [what for what, name in (("its best model", "best"), ("metrics.json", "metrics.json"),
                                        ("a log", "log.jsonl")) if (path / name).exists()]
        words = f"a fine-tuning run of {settings['task']}" + (f" ({', '.join(done)})" if done else ", not started")
        return Contents(path, FINETUNING_RUN, words, started=bool(done))
    steps = sorted(int(p.name[5:]) for p in (path / "checkpoints").glob("step-*")
                   if p.name[5:].isdigit() and (p / "state.json").is_file())
    trained = (path / "model.safetensors").is_file()
    done = ([f"{len(steps)} checkpoint{'s' if len(steps) > 1 else ''}, up to step {steps[-1]}"] if steps else []) \
        + (["the trained model"] if trained else [])
    words = ("a pretraining distillation run" if distilled else "a pretraining run") + \
        (f" ({', '.join(done)})" if done else " with no checkpoint yet")
    return Contents(path, PRETRAINING_RUN, words, started=bool(done))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


# -- 2. which --out a command may use -------------------------------------------------------------------

class OutPathError(InputError):
    """An output path that would replace or mix with something that must be kept; the message says
    what is there and what to do."""


def _under_a_file(out: Path, flag: str) -> None:
    """Refuse an output whose folder (or a folder above it) is a file: nothing could be created there."""
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutPathError(f"{flag} {out}: {blocking} is a file, so no folder can hold {out.name}")


def _overlap(out: Path, flag: str, inputs) -> None:
    """Refuse an output that is, contains, or is inside one of the command's inputs."""
    out_r = out.resolve()
    for input_flag, given in inputs:
        if given is None or str(given) == "-":
            continue
        inp = Path(given).resolve()
        if out_r == inp:
            why = f"is the {input_flag} input"
        elif inp.is_relative_to(out_r):
            why = f"contains the {input_flag} input {given}"
        elif out_r.is_relative_to(inp):
            why = f"is inside the {input_flag} input {given}"
        else:
            continue
        raise OutPathError(f"{flag} {out} {why}: writing there would change what the command reads; "
                           f"use another {flag}")


def check_out_folder(out, kind: str, *, inputs: Iterable[tuple[str, object]] = (), resume: bool = False,
                     overwrite: bool = False, flag: str = "--out") -> Contents:
    """The rules for an output *folder* of `kind` (a run, a vocabulary), checked before anything is read
    or written; returns what the folder holds. Refused, with OutPathError:

      a live lock              another process is writing there (FolderInUseError)
      an input overlap         the folder is, contains or is inside an input of the command (inputs:
                               (flag, path) pairs; even --overwrite cannot allow it)
      a file, other files, a model, a run or folder of another kind
                               never replaced (delete or move it yourself if it must go)
      an earlier `kind`        a started run, or an existing vocabulary, unless resume (continue it)
                               or overwrite (replace it; the caller says so, then clear_folder)

    A run of `kind` that never trained (no checkpoint, no best model, no log) may be reused: the
    command starts it again, as --resume would (pretraining then checks its settings are the same).
    """
    out = Path(out)
    if resume and overwrite:
        raise OutPathError("--resume continues the run in --out, --overwrite replaces it: give one of them")
    holder = lock_holder(out)
    if holder is not None and holder.alive is not False and not holder.is_this_process:
        raise FolderInUseError(holder.refusal(out))
    _under_a_file(out, flag)
    _overlap(out, flag, inputs)
    found = contents(out)
    if found.kind in (ABSENT, EMPTY):
        return found
    if found.kind == FILE:
        raise OutPathError(f"{flag} {out} is a file, not a folder: give a folder name (it is created)")
    if found.kind != kind:
        raise OutPathError(f"{flag} {out} holds {found.words}, not a {kind}: it is never replaced; "
                           f"use another {flag}")
    if resume or overwrite or (kind in RUNS and not found.started):
        return found
    continue_it = "--resume to continue it, " if kind in RUNS else ""
    raise OutPathError(f"{flag} {out} already holds {found.words}; use another {flag}, "
                       f"{continue_it}or --overwrite to replace it")


def check_out_files(outputs: Iterable[tuple[str, object]], inputs: Iterable[tuple[str, object]] = ()) -> None:
    """The rules for single output *files* (a report, a .npy, a plot, cluster labels), checked before
    anything is read or written. An earlier output file may be replaced (atomically); refused, with
    OutPathError: a path that is a folder or lies under a file, that is (or is inside) an input, that
    replaces a file in (or two levels under) a run, model or vocabulary folder, or that two outputs
    of one command share.
    outputs, inputs: (flag, path) pairs; a None path (an option not given) is skipped."""
    inputs = list(inputs)
    seen = {}
    for flag, given in outputs:
        if given is None:
            continue
        out = Path(given)
        if out.is_dir():
            raise OutPathError(f"{flag} {out} is a folder; give a file name")
        _under_a_file(out, flag)
        _overlap(out, flag, inputs)
        if out.is_file():
            for folder in list(out.parents)[:3]:      # RUN/x, RUN/best/x, RUN/checkpoints/step-N/x
                home = contents(folder)
                if home.kind in (*RUNS, MODEL, VOCABULARY):
                    raise OutPathError(f"{flag} {out} is a file of {home.words} in {folder}: it is never replaced; "
                                       f"use another {flag}")
        key = out.resolve()
        if key in seen:
            raise OutPathError(f"{flag} and {seen[key]} are the same file {out}: give each its own name")
        seen[key] = flag


def clear_folder(path, keep: Iterable[str] = HIDDEN) -> list[str]:
    """Delete everything in `path` but the names in `keep` (the lock): what --overwrite does once it has
    said what it replaces. Returns the names deleted."""
    gone = []
    for child in sorted(Path(path).iterdir()):
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        gone.append(child.name)
    return gone


# -- 3. one writer per run folder -------------------------------------------------------------------------

class FolderInUseError(OutPathError):
    """Another process holds the run folder's lock."""


TORN_LOCK_SECONDS = 5.0     # a lock file still unreadable after this long was torn by a kill, not being written


@dataclasses.dataclass(frozen=True)
class LockHolder:
    """Who wrote RUN/.lock. alive: True, False (the process is gone: the lock is stale), or None (another
    host: it cannot be checked from here)."""
    pid: int | None
    host: str
    started: str
    alive: bool | None

    @property
    def is_this_process(self) -> bool:
        return self.pid == os.getpid() and self.host == socket.gethostname()

    def refusal(self, folder) -> str:
        if self.pid is None:
            return (f"{folder} is being locked by another process right now (its {LOCK_NAME} is still being written); "
                    f"wait for it, or use another --out")
        where = f"process {self.pid} on {self.host} since {self.started}"
        if self.alive is None:
            return (f"{folder} is in use by {where}; that host cannot be checked from here: if that process has "
                    f"ended, delete {Path(folder) / LOCK_NAME}")
        return f"{folder} is in use by {where}; wait for it to finish, or use another --out"


def _process_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:           # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def lock_holder(folder) -> LockHolder | None:
    """Who holds RUN/.lock (None: no lock file). A lock file that cannot be parsed is `pid=None`: alive
    while it is younger than TORN_LOCK_SECONDS (its writer may be between creating it and writing it),
    stale after that (the writer was killed in between)."""
    path = Path(folder) / LOCK_NAME
    try:
        raw = path.read_text(encoding="utf-8")
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        raw, age = "", TORN_LOCK_SECONDS
    try:
        info = json.loads(raw)
        pid, host, started = int(info["pid"]), str(info["host"]), str(info["started"])
    except (ValueError, KeyError, TypeError):
        return LockHolder(None, "?", "?", alive=age < TORN_LOCK_SECONDS)
    alive = _process_alive(pid) if host == socket.gethostname() else None
    return LockHolder(pid, host, started, alive)


class RunLock:
    """RUN/.lock for the time of a `with` block: one writer per run folder.

        with RunLock(run_dir, warn=print):
            ...                           # the only process writing in run_dir

    Entering creates the folder and the lock file atomically (O_CREAT | O_EXCL fails if it exists)
    with {"pid", "host", "started"}; if another live process holds it, FolderInUseError (the message
    names it); if the holder is gone (stale), the lock is taken over and warn() says whose it was.
    Leaving, also on an exception, removes the lock if it is still this one's, and the folder if entering
    created it and nothing was written there (a run refused on its inputs leaves no empty folder behind).
    """

    def __init__(self, folder, warn: Callable[[str], object] = print):
        self.folder, self.warn = Path(folder), warn
        self.path = self.folder / LOCK_NAME
        self.mine = None
        self.created = False

    def __enter__(self) -> "RunLock":
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        stale = None
        for _ in range(5):            # create; or take a stale lock over, then create (someone may win it first)
            if self._create():
                if stale is not None:
                    self.warn(f"warning: {self.path} was left by process {stale.pid} on {stale.host} (since "
                              f"{stale.started}), which is no longer running; took the lock over"
                              if stale.pid is not None else
                              f"warning: {self.path} was an unreadable lock file (a process killed while "
                              f"creating it); took the lock over")
                return self
            holder = lock_holder(self.folder)
            if holder is None:
                continue              # released between our try and our look: try again
            if holder.alive is not False:
                raise FolderInUseError(holder.refusal(self.folder))
            if self._remove_if_stale():
                stale = holder
        raise FolderInUseError(f"{self.folder}: could not take its lock ({self.path}); try again")

    def _create(self) -> bool:
        """One attempt at creating the lock file; True if this process now holds it."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self.mine = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.mine) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return True

    def _remove_if_stale(self) -> bool:
        """Delete a stale lock, judged again under a short-lived guard file: two processes that both
        found it stale must not both delete it (the second would delete the first's new, live lock)."""
        guard = self.folder / (LOCK_NAME + ".takeover")
        for _ in range(200):
            try:
                os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                break
            except FileExistsError:
                with contextlib.suppress(FileNotFoundError):    # a guard older than 10 s: its owner was killed
                    if time.time() - guard.stat().st_mtime > 10:
                        guard.unlink()
                time.sleep(0.05)
        else:
            return False
        try:
            holder = lock_holder(self.folder)
            if holder is not None and holder.alive is False:
                self.path.unlink(missing_ok=True)
                return True
            return False
        finally:
            guard.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        try:
            if self.mine is not None and json.loads(self.path.read_text(encoding="utf-8")) == self.mine:
                self.path.unlink()
        except (OSError, ValueError):
            pass                      # gone already, or no longer ours: nothing to release
        self.mine = None
        if self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()   # only if empty


@contextlib.contextmanager
def claim_run_folder(out, kind: str, *, inputs: Iterable[tuple[str, object]] = (), resume: bool = False,
                     overwrite: bool = False, say: Callable[[str], object] = print) -> Iterator[Contents]:
    """A run folder for the time of a `with` block: `check_out_folder`'s rules (before anything is
    written), then the lock, then the rules again under it (another process may have written there in
    between); with overwrite, say what is replaced and clear the folder. Yields what it held."""
    inputs = list(inputs)
    check_out_folder(out, kind, inputs=inputs, resume=resume, overwrite=overwrite)
    with RunLock(out, warn=say):
        found = check_out_folder(out, kind, inputs=inputs, resume=resume, overwrite=overwrite)
        for leftover in remove_dead_temporaries(out):
            say(f"removed {leftover}: a file a killed process was writing")
        if overwrite and found.kind == kind:
            say(f"--overwrite: replacing {found.words} in {out}")
            clear_folder(out)
        yield found
