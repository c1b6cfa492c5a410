"""minibert/files.py: atomic writes, what a folder holds, the --out rules, the run-folder lock.

The commands that use them are tested in tests/cli/test_out_folders.py."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import numpy
import pytest

from minibert import files
from minibert.files import (ABSENT, EMPTY, FILE, FINETUNING_RUN, MODEL, OTHER, PRETRAINING_RUN, VOCABULARY,
                            FolderInUseError, OutPathError, RunLock, atomic_open, atomic_path, check_out_files,
                            check_out_folder, claim_run_folder, contents, lock_holder, save_figure, save_npy,
                            write_json, write_text)


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped): no process has it now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def no_temporaries(folder) -> bool:
    return not [p.name for p in folder.iterdir() if ".tmp" in p.name]


# -- 1. atomic writes -------------------------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text(tmp_path / "report.csv", "old\n")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_open(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("the writer failed midway")
    assert path.read_text() == "old\n" and no_temporaries(tmp_path)
    with pytest.raises(KeyboardInterrupt):                 # an interrupt too (BaseException)
        with atomic_path(path) as tmp:
            tmp.write_text("new")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n" and no_temporaries(tmp_path)


def test_the_temporary_is_beside_the_file_with_its_suffix_and_replaces_it_whole(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt" and tmp.name.startswith(".a.txt.")
        tmp.write_text("new")
        assert path.read_text() == "old"                   # nothing changes until the block ends
    assert path.read_text() == "new" and no_temporaries(tmp_path)


def test_text_json_arrays_and_figures(tmp_path):
    assert write_text(tmp_path / "t.txt", "é\n").read_bytes() == "é\n".encode()
    assert json.loads(write_json(tmp_path / "j.json", {"b": 1, "a": [2]}).read_text()) == {"a": [2], "b": 1}
    out = save_npy(tmp_path / "vectors", numpy.arange(6.0).reshape(2, 3))      # numpy's rule: .npy added
    assert out.name == "vectors.npy" and numpy.array_equal(numpy.load(out), numpy.arange(6.0).reshape(2, 3))
    from minibert.viz.figure import figure
    fig = figure((2, 2))
    fig.subplots().plot([0, 1])
    png = save_figure(fig, tmp_path / "plot", dpi=20)                          # matplotlib's rule: .png added
    assert png.name == "plot.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert save_figure(fig, tmp_path / "plot.svg").read_text().lstrip().startswith("<?xml")
    assert no_temporaries(tmp_path)


def test_a_replaced_file_keeps_its_mode_a_new_one_gets_the_usual(tmp_path):
    private = write_text(tmp_path / "private.txt", "a")
    os.chmod(private, 0o600)
    write_text(private, "b")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(write_text(tmp_path / "new.txt", "a").stat().st_mode) == files.new_file_mode()


# -- 2. what a folder holds ---------------------------------------------------------------------------------

def make_pretraining_run(folder, checkpoint=True):
    folder.mkdir(parents=True)
    write_json(folder / "run.json", {"corpus": None, "steps": 10})
    write_text(folder / "vocab.txt", "[PAD]\n[UNK]\n")
    if checkpoint:
        (folder / "checkpoints" / "step-00000004").mkdir(parents=True)
        write_json(folder / "checkpoints" / "step-00000004" / "state.json", {"step": 4})
    return folder


def test_what_a_path_holds_in_words(tmp_path):
    assert contents(tmp_path / "nowhere").kind == ABSENT
    (tmp_path / "empty").mkdir()
    write_text(tmp_path / "empty" / ".lock", "{}")                            # the lock does not count
    assert contents(tmp_path / "empty").kind == EMPTY
    assert contents(write_text(tmp_path / "f.txt", "abc")).words == "a file of 3 bytes"
    run = contents(make_pretraining_run(tmp_path / "pre"))
    assert (run.kind, run.started, run.words) == (PRETRAINING_RUN, True, "a pretraining run (1 checkpoint, up to step 4)")
    fresh = contents(make_pretraining_run(tmp_path / "fresh", checkpoint=False))
    assert (fresh.kind, fresh.started, fresh.words) == (PRETRAINING_RUN, False, "a pretraining run with no checkpoint yet")
    fine = tmp_path / "fine"
    (fine / "best").mkdir(parents=True)
    write_json(fine / "run.json", {"task": "sst2", "train": "t.tsv"})
    assert contents(fine).words == "a fine-tuning run of sst2 (its best model)" and contents(fine).kind == FINETUNING_RUN
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        write_text(model / name, "x\n")
    assert contents(model).kind == MODEL
    (model / "model.safetensors").unlink()
    assert contents(model).kind == VOCABULARY and contents(model).words == "a vocabulary (vocab.txt, 1 token)"
    other = tmp_path / "other"
    other.mkdir()
    for name in "abcdef":
        write_text(other / f"{name}.txt", "")
    assert contents(other).kind == OTHER and contents(other).words == "6 other files (a.txt, b.txt, c.txt, d.txt and 2 more)"
    write_text(other / "run.json", "{torn")
    assert contents(other).kind == OTHER and "run.json that names no corpus and no task" in contents(other).words


# -- 2. the --out rules ----------------------------------------------------------------------------------------

def test_an_out_folder_of_another_kind_or_a_file_is_refused(tmp_path):
    run = make_pretraining_run(tmp_path / "pre")
    with pytest.raises(OutPathError, match=r"--out .*pre holds a pretraining run \(1 checkpoint, up to step 4\), "
                                           r"not a fine-tuning run: it is never replaced; use another --out"):
        check_out_folder(run, FINETUNING_RUN, overwrite=True)              # --overwrite cannot allow it either
    with pytest.raises(OutPathError, match="is a file, not a folder"):
        check_out_folder(write_text(tmp_path / "f", ""), PRETRAINING_RUN)
    with pytest.raises(OutPathError, match=r"--out .*f/run: .*f is a file, so no folder can hold run"):
        check_out_folder(tmp_path / "f" / "run", PRETRAINING_RUN)
    (tmp_path / "notes").mkdir()
    write_text(tmp_path / "notes" / "notes.md", "")
    with pytest.raises(OutPathError, match=r"holds 1 other file \(notes.md\), not a vocabulary"):
        check_out_folder(tmp_path / "notes", VOCABULARY)


def test_an_earlier_run_of_the_same_kind_needs_resume_or_overwrite(tmp_path):
    run = make_pretraining_run(tmp_path / "pre")
    with pytest.raises(OutPathError, match="already holds a pretraining run .*; use another --out, --resume to "
                                           "continue it, or --overwrite to replace it"):
        check_out_folder(run, PRETRAINING_RUN)
    assert check_out_folder(run, PRETRAINING_RUN, resume=True).kind == PRETRAINING_RUN
    assert check_out_folder(run, PRETRAINING_RUN, overwrite=True).started
    with pytest.raises(OutPathError, match="give one of them"):
        check_out_folder(run, PRETRAINING_RUN, resume=True, overwrite=True)
    fresh = make_pretraining_run(tmp_path / "fresh", checkpoint=False)      # never trained: started again
    assert not check_out_folder(fresh, PRETRAINING_RUN).started


@pytest.mark.parametrize("out, given, why", [
    ("data", "data", "is the --corpus input"),
    ("data", "data/a.txt", "contains the --corpus input"),
    ("data/run", "data", "is inside the --corpus input"),
])
def test_an_out_folder_that_overlaps_an_input_is_refused_even_with_overwrite(tmp_path, out, given, why):
    (tmp_path / "data").mkdir()
    write_text(tmp_path / "data" / "a.txt", "text\n")
    with pytest.raises(OutPathError, match=f"--out .*{why}.*use another --out"):
        check_out_folder(tmp_path / out, VOCABULARY, inputs=[("--corpus", tmp_path / given)], overwrite=True)


def test_single_output_files(tmp_path):
    csv = write_text(tmp_path / "in.csv", "a\n1\n")
    old = write_text(tmp_path / "report.csv", "old report\n")
    check_out_files([("--out", old)], inputs=[("--csv", csv)])             # an earlier output may be replaced
    check_out_files([("--out", tmp_path / "new" / "deeper" / "r.csv"), ("--plot", None)])
    cases = [
        ([("--out", csv)], "--out .*in.csv is the --csv input"),
        ([("--out", tmp_path)], "is a folder; give a file name"),
        ([("--out", csv / "x.csv")], "in.csv is a file, so no folder can hold x.csv"),
        ([("--out", old), ("--plot", old)], "--plot and --out are the same file"),
    ]
    for outputs, message in cases:
        with pytest.raises(OutPathError, match=message):
            check_out_files(outputs, inputs=[("--csv", csv)])
    run = make_pretraining_run(tmp_path / "pre")
    with pytest.raises(OutPathError, match=r"vocab.txt is a file of a pretraining run .* it is never replaced"):
        check_out_files([("--out", run / "vocab.txt")])
    with pytest.raises(OutPathError, match=r"state.json is a file of a pretraining run .*pre: it is never replaced"):
        check_out_files([("--out", run / "checkpoints" / "step-00000004" / "state.json")])
    check_out_files([("--out", run / "attention.png")])                     # a new file beside a run: fine
    model = tmp_path / "m"
    model.mkdir()
    with pytest.raises(OutPathError, match="is inside the --model input"):
        check_out_files([("--out", model / "x.npy")], inputs=[("--model", model)])


# -- 3. the lock -----------------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from minibert.files import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        info = json.loads((folder / ".lock").read_text())
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname() and info["started"]
        message = (f"{folder} is in use by process {holder.pid} on {socket.gethostname()} since {info['started']}; "
                   f"wait for it to finish, or use another --out")
        with pytest.raises(FolderInUseError) as refused:
            with RunLock(folder):
                pass
        assert str(refused.value) == message
        with pytest.raises(FolderInUseError, match=f"in use by process {holder.pid}"):
            check_out_folder(folder, PRETRAINING_RUN)                       # the rules see it too, read-only
        assert json.loads((folder / ".lock").read_text()) == info          # the refused one left it alone
    finally:
        holder.kill()
        holder.wait()


TRY = """
import sys, time
from minibert.files import FolderInUseError, RunLock
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process tries at the same moment
try:
    with RunLock(sys.argv[1], warn=lambda line: None):
        print("locked", flush=True)
        time.sleep(3)                                    # held until the others have all tried
except FolderInUseError:
    print("refused", flush=True)
"""


def test_of_four_processes_taking_over_one_stale_lock_exactly_one_wins(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_json(folder / ".lock", {"pid": dead_pid(), "host": socket.gethostname(), "started": "2026-01-01 10:00:00"})
    at = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", TRY, str(folder), at], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert said == ["locked", "refused", "refused", "refused"]


def test_a_lock_found_stale_is_judged_again_before_it_is_deleted(tmp_path):
    """The interleaving the guard is for, played by hand: this process found the lock stale, and before it
    deletes it another process has taken it over (the file now names a live process): it must stay."""
    folder = tmp_path / "run"
    folder.mkdir()
    live = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01 10:00:00"}
    write_json(folder / ".lock", live)
    assert RunLock(folder)._remove_if_stale() is False
    assert json.loads((folder / ".lock").read_text()) == live and not (folder / ".lock.takeover").exists()


def test_the_lock_is_released_on_exit_and_on_an_exception(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert lock_holder(folder).pid == os.getpid()
    assert not (folder / ".lock").exists()
    with pytest.raises(ValueError):
        with RunLock(folder):
            (folder / "run.json").write_text("{}")
            raise ValueError("a bug in the run")
    assert [p.name for p in folder.iterdir()] == ["run.json"]
    with pytest.raises(ValueError):                          # a folder the lock created and nothing written in it
        with RunLock(tmp_path / "new"):
            raise ValueError("refused before anything was written")
    assert not (tmp_path / "new").exists()


def test_a_stale_lock_is_taken_over_with_a_warning_naming_the_dead_process(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    pid = dead_pid()
    write_json(folder / ".lock", {"pid": pid, "host": socket.gethostname(), "started": "2026-01-01 10:00:00"})
    said = []
    with RunLock(folder, warn=said.append):
        assert lock_holder(folder).pid == os.getpid()
    assert said == [f"warning: {folder / '.lock'} was left by process {pid} on {socket.gethostname()} "
                    f"(since 2026-01-01 10:00:00), which is no longer running; took the lock over"]
    assert sorted(p.name for p in folder.iterdir()) == []                  # no lock, no guard file left


def test_a_torn_lock_file_waits_a_few_seconds_then_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").write_text("")                         # a process killed between creating and writing it
    with pytest.raises(FolderInUseError, match="being locked by another process right now"):
        RunLock(folder).__enter__()
    old = time.time() - 60
    os.utime(folder / ".lock", (old, old))
    said = []
    with RunLock(folder, warn=said.append):
        pass
    assert len(said) == 1 and "unreadable lock file" in said[0]


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_json(folder / ".lock", {"pid": dead_pid(), "host": "elsewhere", "started": "2026-01-01 10:00:00"})
    with pytest.raises(FolderInUseError, match=r"on elsewhere since .* cannot be checked from here: .* delete"):
        RunLock(folder).__enter__()


def test_claim_refuses_before_writing_and_overwrite_says_what_it_replaces(tmp_path):
    run = make_pretraining_run(tmp_path / "pre")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(OutPathError, match="already holds"):
        with claim_run_folder(run, PRETRAINING_RUN):
            pass
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before    # no lock file was even created
    said = []
    with claim_run_folder(run, PRETRAINING_RUN, overwrite=True, say=said.append) as found:
        assert found.started and [p.name for p in run.iterdir()] == [".lock"]
    assert said == [f"--overwrite: replacing a pretraining run (1 checkpoint, up to step 4) in {run}"]
    assert list(run.iterdir()) == []
