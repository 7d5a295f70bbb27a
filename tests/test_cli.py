"""The ``regions`` command: models from every accepted source, summaries that agree
with the Python API and with independent facts, and exit code 2 for bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
import shapely
import torch

import regions
from regions.cli import he_network, main, parse_architecture


def _model(sizes=(2, 10, 10, 1), seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json", "--no-progress")
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_architecture_and_he_init():
    assert parse_architecture("2-64x4-1") == [2, 64, 64, 64, 64, 1]
    assert parse_architecture("1-32-16-1") == [1, 32, 16, 1]
    pairs = he_network("2-300-300-1", seed=7)
    assert [W.shape for W, _ in pairs] == [(300, 2), (300, 300), (1, 300)]
    # W ~ N(0, 2 / fan_in), b ~ N(0, 0.1^2)
    assert abs(pairs[1][0].var() * 300 / 2 - 1) < 0.05
    assert abs(pairs[1][1].std() / 0.1 - 1) < 0.15
    np.testing.assert_array_equal(he_network("2-300-300-1", 7)[0][0], pairs[0][0])


@pytest.mark.parametrize("source", ["sequential", "state_dict", "npz"])
def test_enumerate_model_files_match_api(tmp_path, capsys, source):
    model = _model()
    if source == "sequential":
        path = tmp_path / "net.pt"
        torch.save(model, path)
    elif source == "state_dict":
        path = tmp_path / "sd.pt"
        torch.save(model.state_dict(), path)
    else:
        path = tmp_path / "net.npz"
        lin = [m for m in model if isinstance(m, torch.nn.Linear)]
        np.savez(path, **{f"{k}{i}": getattr(m, n).detach().numpy()
                          for i, m in enumerate(lin) for k, n in (("W", "weight"), ("b", "bias"))})
    trust = ["--trust"] if source == "sequential" else []   # a whole pickled module
    s = _json(capsys, "enumerate", str(path), "--domain", "-2,2,-1,1", *trust)
    p = regions.partition(model, ((-2, 2), (-1, 1)))
    assert s["regions"] == len(p)
    assert s["vertices"] == len(p.vertices)
    assert s["area"]["sum"] == pytest.approx(8.0, rel=1e-12)
    assert s["area"]["min"] == pytest.approx(p.measure.min(), rel=1e-12)
    assert s["area"]["max"] == pytest.approx(p.measure.max(), rel=1e-12)
    assert s["network"].startswith("2-10-10-1")


def test_enumerate_human_summary_and_1d(capsys):
    code, out, _ = _run(capsys, "enumerate", "he:2-12x2-1:3", "--domain=-1,1,-1,1", "--no-progress")
    assert code == 0
    p = regions.partition(he_network("2-12x2-1", 3), ((-1, 1), (-1, 1)))
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert int(lines["regions"]) == len(p)
    assert int(lines["vertices"]) == len(p.vertices)
    assert "sum 4" in lines["area"] and float(lines["seconds"]) >= 0

    # one hidden layer of n neurons, all breakpoints inside: n + 1 pieces
    W = np.linspace(1, 2, 7)[:, None]
    b = -W[:, 0] * np.linspace(-0.9, 0.9, 7)            # breakpoints at -0.9 ... 0.9
    path = "line.npz"
    np.savez(path, W0=W, b0=b, W1=np.ones((1, 7)), b1=np.zeros(1))
    try:
        s = _json(capsys, "enumerate", path, "--domain", "-1,1")
    finally:
        import os

        os.remove(path)
    assert s["regions"] == 8 and s["dim"] == 1
    assert s["length"]["sum"] == pytest.approx(2.0)
    assert s["length"]["max"] == pytest.approx(0.3)


def test_enumerate_writes_npz_geojson_and_plot(tmp_path, capsys):
    model = _model(seed=1)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    npz, gj, png = tmp_path / "p.npz", tmp_path / "p.geojson", tmp_path / "p.png"
    s = _json(capsys, "enumerate", str(tmp_path / "m.pt"), "--domain", "-1,1,-1,1", "--out", str(npz))
    q = regions.load(npz)
    assert len(q) == s["regions"]
    x = np.random.default_rng(0).uniform(-1, 1, size=(300, 2))
    with torch.no_grad():
        out = model(torch.as_tensor(x, dtype=torch.float32)).numpy()[:, 0]
    A, c = q.affine
    r = q.locate(x)
    np.testing.assert_allclose(np.einsum("md,md->m", A[r, 0], x) + c[r, 0], out, atol=1e-5)

    s2 = _json(capsys, "enumerate", str(tmp_path / "m.pt"), "--domain", "-1,1,-1,1",
               "--out", str(gj), "--plot", str(png))
    features = json.loads(gj.read_text())["features"]
    assert len(features) == s2["regions"]
    areas = [shapely.geometry.shape(f["geometry"]).area for f in features]
    assert sum(areas) == pytest.approx(4.0, rel=1e-12)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_example_runs(capsys):
    s = _json(capsys, "enumerate", "example")
    assert s["regions"] > 100 and s["area"]["sum"] == pytest.approx(36.0)


BAD = [
    (["enumerate", "missing.pt"], "no model file 'missing.pt'"),
    (["enumerate", "he:2-8x:1"], "bad architecture"),
    (["enumerate", "he:2-8-1:x"], "seed must be a non-negative integer"),
    (["enumerate", "example", "--domain", "1,2,3"], "bad domain '1,2,3'"),
    (["enumerate", "example", "--domain", "a,b,c,d"], "bad domain 'a,b,c,d'"),
    (["enumerate", "example", "--domain", "-1,1"], "it is 1D but the network takes 2 inputs"),
    (["enumerate", "example", "--domain", "1,-1,0,1"], "empty or inverted"),
    (["enumerate", "example", "--domain", "0,1,0,inf"], "finite"),
    (["enumerate", "example", "--max-regions", "50"], "too many regions"),
    (["enumerate", "example", "--max-regions", "0"], "--max-regions"),
    (["enumerate", "example", "--out", "p.txt"], "bad --out 'p.txt'"),
    (["enumerate", "he:3-4-1"], "only 1- and 2-input networks"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[m for _, m in BAD])
def test_bad_inputs_exit_2_with_one_line(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("regions enumerate: error:")


def test_bad_model_files(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    code, _, err = _run(capsys, "enumerate", str(garbage))
    assert code == 2 and "bad model file" in err and "garbage.pt" in err

    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)),
               tmp_path / "tanh.pt")
    code, _, err = _run(capsys, "enumerate", str(tmp_path / "tanh.pt"), "--trust")
    assert code == 2 and "Tanh" in err and "layer 1" in err

    np.savez(tmp_path / "weights.npz", a=np.ones(3))
    code, _, err = _run(capsys, "enumerate", str(tmp_path / "weights.npz"))
    assert code == 2 and "W0, b0" in err

    np.savez(tmp_path / "nan.npz", W0=np.full((3, 2), np.nan), b0=np.zeros(3),
             W1=np.ones((1, 3)), b1=np.zeros(1))
    code, _, err = _run(capsys, "enumerate", str(tmp_path / "nan.npz"))
    assert code == 2 and "non-finite" in err


def test_study_passes_options(monkeypatch, capsys, tmp_path):
    import regions.study

    seen = {}

    def fake_run_study(preset, out_dir, executor, progress, seeds):
        seen.update(preset=preset, out_dir=out_dir, executor=executor, progress=progress,
                    seeds=seeds)
        return str(tmp_path / "r" / "report.md")

    monkeypatch.setattr(regions.study, "run_study", fake_run_study)
    code, out, _ = _run(capsys, "study", "--out", str(tmp_path / "r"), "--seeds", "0,2",
                        "--no-progress")
    assert code == 0 and "report.md" in out
    assert seen == dict(preset="quick", out_dir=str(tmp_path / "r"), executor=None,
                        progress=False, seeds=[0, 2])
    code, _, _ = _run(capsys, "study", "--preset", "paper", "--workers", "1")
    assert code == 0 and seen["preset"] == "paper" and seen["seeds"] is None
    assert seen["executor"] == 1                  # run_study runs the jobs in this process
    code, _, _ = _run(capsys, "study", "--workers", "3")
    assert code == 0 and seen["executor"] == 3
    code, _, err = _run(capsys, "study", "--seeds", "x")
    assert code == 2 and "bad --seeds 'x'" in err
    code, _, err = _run(capsys, "study", "--workers", "0")
    assert code == 2 and "bad --workers 0" in err


def test_study_workers_size_the_pool_that_runs_the_jobs(monkeypatch, capsys, tmp_path):
    # through the real run_study: --workers N becomes a pool of N processes (1: none)
    import os

    from types import SimpleNamespace

    import regions.study.report
    import regions.study.store
    import regions.study.runner as st

    pools, ran = [], []

    def fake_pool(workers=2):
        pools.append(workers)
        return st.SerialExecutor()

    def fake_job(job):
        ran.append(job["name"])
        return SimpleNamespace(name=job["name"], seed=job["seed"], seconds=0.0, mean_loss=[1.0])

    monkeypatch.setattr(st, "_default_executor", fake_pool)
    monkeypatch.setattr(st, "run_job", fake_job)
    monkeypatch.setattr(regions.study.store, "save_run", lambda *a, **kw: None)
    monkeypatch.setattr(regions.study.report, "write_report",
                        lambda results, out_dir, **kw: os.path.join(out_dir, "report.md"))
    out = str(tmp_path / "r")
    for workers, want in ((["--workers", "3"], [3]), (["--workers", "1"], []), ([], [2])):
        pools.clear()
        ran.clear()
        code, _, _ = _run(capsys, "study", "--preset", "tiny", "--out", out, "--no-progress",
                          *workers)
        assert code == 0 and pools == want and len(ran) == 4, (workers, pools)


def test_study_unknown_preset_exits_2(capsys, tmp_path):
    code, _, err = _run(capsys, "study", "--preset", "huge", "--out", str(tmp_path / "r"))
    assert code == 2 and "huge" in err and "quick" in err
    assert len(err.strip().splitlines()) == 1


def test_console_entry_point_exit_code(tmp_path):
    import os
    from pathlib import Path

    root = str(Path(regions.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "regions.cli", "enumerate", "example",
                           "--domain", "0,0,0,1"], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 2
    assert "bad domain '0,0,0,1'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_enumerate_encoded_state_dict(tmp_path, capsys):
    # a positional-encoding model saved as a state_dict: the CLI rebuilds the
    # encoding from its buffers and finds the same pieces as the model itself
    torch.manual_seed(0)
    model = torch.nn.Sequential(regions.PositionalEncoding(4), torch.nn.Linear(8, 24),
                                torch.nn.ReLU(), torch.nn.Linear(24, 1))
    path = tmp_path / "pe.pt"
    torch.save(model.state_dict(), path)
    s = _json(capsys, "enumerate", str(path), "--domain", "0,1")
    p = regions.partition(model, (0.0, 1.0))
    assert s["regions"] == len(p) and s["dim"] == 1
    assert s["length"]["sum"] == pytest.approx(1.0)
    code, out, _ = _run(capsys, "enumerate", str(path), "--domain=0,1", "--no-progress")
    assert code == 0 and "8 features" in out.splitlines()[0]


def test_study_runs_its_jobs_on_a_dask_cluster(capsys, tmp_path):
    # a real scheduler: the jobs go through it (its task prefixes name run_job), the
    # report is written here, and the cluster outlives the study
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = tmp_path / "r"
        code, stdout, err = _run(capsys, "study", "--preset", "tiny", "--out", str(out),
                                 "--scheduler", cluster.scheduler_address, "--no-progress")
        assert code == 0, err
        assert (out / "report.md").is_file() and "report.md" in stdout
        prefixes = cluster.scheduler.task_prefixes
        assert "run_job" in prefixes and prefixes["run_job"].state_counts["memory"] == 4  # 4 jobs ran there
        assert cluster.scheduler.workers                         # still up


def test_study_scheduler_errors_name_what_is_accepted(capsys, tmp_path):
    code, _, err = _run(capsys, "study", "--scheduler", "localhost:8786", "--out", str(tmp_path))
    assert code == 2 and "tcp://HOST:8786" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "study", "--scheduler", "tcp://x:1", "--workers", "2",
                        "--out", str(tmp_path))
    assert code == 2 and "exclude each other" in err


def test_enumerate_encoded_2d_reports_the_certified_crossings(tmp_path, capsys):
    torch.manual_seed(1)
    model = torch.nn.Sequential(regions.PositionalEncoding(2, in_features=2),
                                torch.nn.Linear(8, 10), torch.nn.ReLU(), torch.nn.Linear(10, 1))
    path = tmp_path / "pe2.pt"
    torch.save(model.state_dict(), path)
    s = _json(capsys, "enumerate", str(path), "--domain", "0,1,0,1")
    p = regions.partition(model, ((0, 1), (0, 1)))
    assert s["regions"] == len(p)
    assert s["crossings"]["certified"] == p.stats["crossings"] > 0
    assert s["crossings"]["uncertified"] == len(p.stats["uncertified_crossings"])
    code, out, _ = _run(capsys, "enumerate", str(path), "--domain=0,1,0,1", "--no-progress")
    assert code == 0 and "certified" in out
