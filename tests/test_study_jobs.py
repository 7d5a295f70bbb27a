"""The study's job files: stored as data (JSON + npz), validated on read, keyed
by their configuration so that a rerun resumes only what matches; stale files
moved aside with a note; Ctrl-C stops the study at once; a bad --out is
refused before any training."""
import copy
import glob
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import regions.study.runner as runner
from regions.cli import main
from regions.study.store import load_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one(n_boot=20, seeds=(0,)):
    exp = copy.deepcopy([e for e in runner.PRESETS["tiny"]["experiments"]
                         if e["name"] == "1d-raw"][0])
    exp["train"]["epochs"] = 20
    return {"experiments": [exp], "seeds": list(seeds), "n_boot": n_boot, "eps": 0.5,
            "window": 0.25, "n_distant": 50, "name": "one"}


class _Count:
    """Counts the jobs run_study trains: alone (wraps the real run_job) or in
    ensembles (wraps train_jobs); ``groups`` lists how many trained together."""

    def __init__(self, monkeypatch):
        self.names, self.groups = [], []
        real_job, real_group = runner.run_job, runner.train_jobs

        def counted_job(job):
            self.names.append(job["name"])
            self.groups.append(1)
            return real_job(job)

        def counted_group(jobs):
            self.names += [job["name"] for job in jobs]
            self.groups.append(len(jobs))
            return real_group(jobs)

        monkeypatch.setattr(runner, "run_job", counted_job)
        monkeypatch.setattr(runner, "train_jobs", counted_group)


def _tables(out):
    return {t: open(os.path.join(out, "data", t)).read()
            for t in ("summary.csv", "coupling.csv", "findings.csv")}


def _without_timings(tables):
    """The tables' cells, timing columns (``*seconds``, ``*_s``) dropped."""
    import csv
    import io

    out = {}
    for name, text in tables.items():
        rows = list(csv.DictReader(io.StringIO(text)))
        out[name] = [{k: v for k, v in r.items() if not k.endswith(("seconds", "_s"))}
                     for r in rows]
    return out


def test_a_rerun_reuses_every_finished_job_and_writes_the_same_tables(tmp_path, monkeypatch):
    out = str(tmp_path / "r")
    count = _Count(monkeypatch)
    runner.run_study("tiny", out, executor=1, progress=False)
    assert len(count.names) == 4
    first = _tables(out)
    # the jobs are data files only: JSON and plain-array npz
    files = os.listdir(os.path.join(out, "jobs"))
    assert files and all(f.endswith((".json", ".npz")) for f in files)
    count.names.clear()
    said = []
    runner.run_study("tiny", out, executor=1, progress=said.append)
    assert count.names == []                       # nothing trained
    assert any("reuses 4 finished job(s), trains 0" in m for m in said), said
    assert _tables(out) == first                   # read back from the files: same tables
    assert not os.path.exists(os.path.join(out, "stale"))


def test_jobs_of_one_shape_train_together_and_resume_one_by_one(tmp_path, monkeypatch):
    # with ensembles on, the tiny preset's 2D pair and 1D pair each train as one
    # ensemble; removing one finished job retrains it alone, and the tables are
    # those of the first run
    out = str(tmp_path / "e")
    count = _Count(monkeypatch)
    tiny = {**copy.deepcopy(runner.PRESETS["tiny"]), "ensemble": True, "name": "tiny"}
    runner.run_study(tiny, out, executor=1, progress=False)
    assert sorted(count.groups) == [2, 2]
    first = _tables(out)
    for f in glob.glob(os.path.join(out, "jobs", "2d-pe3_s0.*")):
        os.remove(f)
    count.names.clear()
    count.groups.clear()
    runner.run_study(tiny, out, executor=1, progress=False)
    assert count.names == ["2d-pe3"] and count.groups == [1]
    assert _without_timings(_tables(out)) == _without_timings(first)


def test_a_job_of_other_settings_is_not_reused_and_is_moved_to_stale(tmp_path, monkeypatch):
    out = str(tmp_path / "r")
    count = _Count(monkeypatch)
    runner.run_study(_one(n_boot=20), out, executor=1, progress=False)
    count.names.clear()
    said = []
    runner.run_study(_one(n_boot=21), out, executor=1, progress=said.append)
    assert count.names == ["1d-raw"]               # retrained
    notes = glob.glob(os.path.join(out, "stale", "*", "NOTE.md"))
    assert len(notes) == 1
    note = open(notes[0]).read()
    assert "jobs/1d-raw_s0.json" in note and "another configuration" in note
    assert "report.md" in note                     # the old report is marked too
    assert os.path.isfile(os.path.join(os.path.dirname(notes[0]), "jobs", "1d-raw_s0.json"))
    assert any("not reused" in m for m in said)
    # what is in jobs/ now is the new job, with the new key
    run, key = load_run(os.path.join(out, "jobs"), "1d-raw_s0")
    assert key == runner.job_key(runner.build_jobs(_one(n_boot=21))[0][0])


@pytest.mark.parametrize("damage, message", [
    ("json_garbage", "not a valid job file"),
    ("short_feature", "features"),
    ("nan_coords", "NaN or inf"),
    ("int_as_string", "seed"),
    ("missing_array", "missing"),
])
def test_a_damaged_job_file_is_refused_by_name_and_retrained(tmp_path, monkeypatch, damage,
                                                              message):
    out = str(tmp_path / "r")
    jobs = os.path.join(out, "jobs")
    runner.run_study(_one(), out, executor=1, progress=False)
    js, npz = os.path.join(jobs, "1d-raw_s0.json"), os.path.join(jobs, "1d-raw_s0.npz")
    doc = json.load(open(js))
    arrays = dict(np.load(npz))
    if damage == "json_garbage":
        open(js, "w").write("{not json")
    elif damage == "short_feature":
        key = next(k for k in arrays if "/features/" in k)
        arrays[key] = arrays[key][:-1]
        np.savez(npz, **arrays)
    elif damage == "nan_coords":
        arrays["run/coords"][0, 0] = np.nan
        np.savez(npz, **arrays)
    elif damage == "int_as_string":
        doc["run"]["seed"] = "0"
        json.dump(doc, open(js, "w"))
    else:
        del arrays["run/mean_loss"]
        np.savez(npz, **arrays)
    with pytest.raises(ValueError, match=message):
        load_run(jobs, "1d-raw_s0")
    count = _Count(monkeypatch)
    said = []
    runner.run_study(_one(), out, executor=1, progress=said.append)
    assert count.names == ["1d-raw"]
    assert any("not reused" in m and message.split()[0] in m for m in said), said


def test_a_crafted_job_file_cannot_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    out = str(tmp_path / "r")
    jobs = os.path.join(out, "jobs")
    runner.run_study(_one(), out, executor=1, progress=False)
    payload = pickle.dumps({"x": Evil()})
    # a pickle in place of each file of the job, and an old-style .pkl beside them
    for name in ("1d-raw_s0.npz", "1d-raw_s0.json", "1d-raw_s0.pkl"):
        with open(os.path.join(jobs, name), "wb") as fh:
            fh.write(payload)
    with pytest.raises(ValueError):
        load_run(jobs, "1d-raw_s0")
    with pytest.raises(ValueError):
        runner.report_from_jobs(out)
    count = _Count(monkeypatch)
    runner.run_study(_one(), out, executor=1, progress=False)
    assert count.names == ["1d-raw"]
    assert not marker.exists()
    # the old .pkl was moved aside, never opened
    assert glob.glob(os.path.join(out, "stale", "*", "jobs", "1d-raw_s0.pkl"))
    src = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "regions", "study",
                                                                  "*.py")))
    assert "import pickle" not in src and "pickle.load" not in src


def _study_cli(capsys, *args):
    code = main(["study", *args])
    return code, capsys.readouterr().err


def test_out_that_is_a_file_or_not_writable_is_refused_before_training(tmp_path, capsys,
                                                                        monkeypatch):
    count = _Count(monkeypatch)
    f = tmp_path / "report.md"
    f.write_text("x")
    code, err = _study_cli(capsys, "--preset", "tiny", "--out", str(f), "--workers", "1")
    assert code == 2 and "existing file" in err and len(err.strip().splitlines()) == 1
    code, err = _study_cli(capsys, "--preset", "tiny", "--out", str(f / "sub"), "--workers", "1")
    assert code == 2 and "not a writable folder" in err and len(err.strip().splitlines()) == 1
    if os.geteuid() != 0:  # root writes into read-only folders
        ro = tmp_path / "ro"
        (ro / "jobs").mkdir(parents=True)
        ro.chmod(0o555)
        (ro / "jobs").chmod(0o555)
        try:
            code, err = _study_cli(capsys, "--preset", "tiny", "--out", str(ro), "--workers", "1")
        finally:
            (ro / "jobs").chmod(0o755)
            ro.chmod(0o755)
        assert code == 2 and "not a writable folder" in err
    assert count.names == []


def test_sigint_stops_the_study_at_once_and_says_how_to_resume(tmp_path):
    out = str(tmp_path / "r")
    env = {**os.environ, "PYTHONPATH": ROOT, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "regions", "study", "--preset", "quick",
                             "--out", out, "--workers", "2", "--progress"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                            text=True, start_new_session=True)
    line = proc.stderr.readline()
    assert "study 'quick'" in line, line
    time.sleep(12.0)  # the workers are training (torch and the pool have their threads)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the study and any worker it left
        raise
    took = time.perf_counter() - t0
    print(f"SIGINT to exit: {took:.2f} s")
    assert proc.returncode == 130, err
    assert "report_from_jobs" in err and "Rerun the same command" in err
    assert "Traceback" not in err


def test_report_only_writes_the_report_from_saved_jobs_without_training(tmp_path, monkeypatch):
    from regions.cli import main

    out = str(tmp_path / "p")
    runner.run_study("tiny", out, executor=1, progress=False)
    jobs = os.path.join(out, "jobs")
    gone = sorted(f for f in os.listdir(jobs) if f.startswith("1d-pe3"))
    assert gone
    for f in gone:                                  # as if the study had been interrupted
        os.remove(os.path.join(jobs, f))
    os.remove(os.path.join(out, "report.md"))
    count = _Count(monkeypatch)
    assert main(["study", "--out", out, "--preset", "tiny", "--report-only"]) == 0
    assert count.names == []                        # nothing trained
    report = open(os.path.join(out, "report.md")).read()
    assert "1d-raw" in report and "2d-pe3" in report and "1d-pe3" not in report
    assert main(["study", "--out", str(tmp_path / "empty"), "--report-only"]) == 2
