"""The ``regions`` command against hostile or broken input: model files that would run
code, crafted arrays, arguments that used to end in a traceback, and output paths
that would overwrite the input, an existing file or a symbolic link's target."""
import io
import os
import re
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import regions
from regions.cli import UsageError, main, read_model


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, err, *phrases):
    assert code == 2, err
    assert err.startswith("regions enumerate: error:"), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, (phrase, err)


def _sequential(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1))


class _RunsOnLoad:
    """Unpickling this object calls ``fn(*args)``: what a malicious model file does."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


# ----------------------------------------------------------------------------- unpickling
@pytest.mark.parametrize("payload", ["os.system", "open"])
def test_a_model_file_that_runs_code_is_refused_and_nothing_runs(tmp_path, monkeypatch,
                                                                capsys, payload):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    evil = (_RunsOnLoad(os.system, f"touch '{marker}'") if payload == "os.system"
            else _RunsOnLoad(open, str(marker), "w"))
    torch.save({"x": evil}, tmp_path / "evil.pt")

    code, _, err = _run(capsys, "enumerate", "evil.pt", "--no-progress")
    assert not marker.exists()
    _assert_one_line_error(code, err, "evil.pt", "unpickling", "--trust", "trust")

    with pytest.raises(ValueError, match="trusted=True") as info:
        read_model("evil.pt")
    assert isinstance(info.value, UsageError)
    assert not marker.exists()


def test_a_whole_module_needs_trust_and_a_state_dict_does_not(tmp_path, capsys):
    model = _sequential()
    torch.save(model, tmp_path / "whole.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    box = ((-1.0, 1.0), (-1.0, 1.0))
    want = regions.partition(model, box)

    code, _, err = _run(capsys, "enumerate", str(tmp_path / "whole.pt"), "--no-progress")
    _assert_one_line_error(code, err, "whole.pt", "nn.Sequential", "--trust",
                           "state_dict")
    with pytest.raises(ValueError, match="trusted=True"):
        read_model(str(tmp_path / "whole.pt"))

    for name, trust in (("whole.pt", ["--trust"]), ("sd.pt", [])):
        code, out, err = _run(capsys, "enumerate", str(tmp_path / name), "--domain=-1,1,-1,1",
                              "--json", "--no-progress", *trust)
        assert code == 0, err
        assert f'"regions": {len(want)},' in out
    # the network read is the module's: the same outputs as a torch forward pass
    x = np.random.default_rng(0).uniform(-1, 1, size=(200, 2))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    for net in (read_model(str(tmp_path / "whole.pt"), trusted=True),
                read_model(str(tmp_path / "sd.pt"))):
        np.testing.assert_allclose(net.forward(x), ref, atol=1e-5)


# ----------------------------------------------------------------------------- crafted inputs
def _savez(path, **arrays):
    np.savez(path, **arrays)
    return path


def _probe_files(d):
    """name -> argv of every bad input the walk below feeds the command."""
    d = Path(d)
    W0, b0, W1, b1 = np.ones((3, 2)), np.zeros(3), np.ones((1, 3)), np.zeros(1)
    with torch.device("meta"):
        meta = _sequential()
    torch.save(meta, d / "meta.pt")
    torch.save(meta.state_dict(), d / "meta_sd.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("hello")
    np.save(d / "single.npy", W0)
    os.replace(d / "single.npy", d / "single.npz")
    (d / "folder.npz").mkdir()
    torch.save(torch.ones(3), d / "tensor.pt")
    torch.save([1, 2, 3], d / "list.pt")
    torch.save({"a": 1, "b": "x"}, d / "dict.pt")
    torch.save({"0.weight": torch.ones(3, 2), "0.bias": "x"}, d / "str_bias.pt")
    torch.save({"0.weight": torch.ones(3, 2, dtype=torch.complex64)}, d / "complex.pt")
    torch.save({"0.weight": torch.ones(3, 2, dtype=torch.bool), "1.weight": torch.ones(1, 3)},
               d / "bool.pt")
    torch.save({"0.weight": torch.ones(0, 2), "1.weight": torch.ones(1, 0)}, d / "no_neurons.pt")
    for slope in ("nan", "inf", "-inf"):
        torch.save(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LeakyReLU(float(slope)),
                                       torch.nn.Linear(3, 1)), d / f"leaky_{slope}.pt")
    _savez(d / "object.npz", W0=np.array([[1.0, None]], dtype=object), b0=b0[:1], W1=W1[:, :1],
           b1=b1)
    _savez(d / "gap.npz", W0=W0, b0=b0, W2=W1, b2=b1)
    _savez(d / "b_only.npz", W0=W0[:1], b0=b0[:1], b1=b1)
    _savez(d / "extra.npz", W0=W0, b0=b0, W1=W1, b1=b1, slopes=np.ones(1))
    _savez(d / "leading_zero.npz", W0=W0, b0=b0, W01=W1, b01=b1)
    _savez(d / "complex.npz", W0=W0.astype(complex), b0=b0, W1=W1, b1=b1)
    _savez(d / "strings.npz", W0=np.array([["1", "2"]]), b0=b0[:1], W1=W1[:, :1], b1=b1)
    _savez(d / "empty_layer.npz", W0=np.ones((0, 2)), b0=np.zeros(0), W1=np.ones((1, 0)), b1=b1)
    _savez(d / "big_ints.npz", W0=np.full((3, 2), 2 ** 60), b0=b0, W1=W1, b1=b1)
    _savez(d / "ok.npz", W0=W0, b0=b0, W1=W1, b1=b1)
    with zipfile.ZipFile(d / "raw_member.npz", "w") as zf:  # W0 is raw bytes, not an .npy
        zf.writestr("W0", b"hello")
        for key, a in (("b0", b0[:1]), ("W1", W1[:, :1]), ("b1", b1)):
            buffer = io.BytesIO()
            np.save(buffer, a)
            zf.writestr(f"{key}.npy", buffer.getvalue())
    os.mkfifo(d / "pipe.npz")
    return {
        "object array .npz": (["object.npz"], "object array"),
        "meta-device Sequential": (["meta.pt", "--trust"], "'meta' device"),
        "meta-device state_dict": (["meta_sd.pt"], "'meta' device"),
        "empty .pt": (["empty.pt"], "empty.pt"),
        "empty .npz": (["empty.npz"], "empty.npz"),
        "text named .npz": (["text.npz"], "not an .npz archive"),
        ".npy named .npz": (["single.npz"], "not an .npz archive"),
        "directory as MODEL": (["folder.npz"], "not a regular file"),
        "empty MODEL": ([""], "no model file ''"),
        "a tensor": (["tensor.pt"], "Tensor"),
        "a list": (["list.pt"], "not a (W, b) pair"),
        "a dict of non-tensors": (["dict.pt"], "no '*.weight'"),
        "a str bias": (["str_bias.pt"], "dtype <U1"),
        "complex state_dict": (["complex.pt"], "complex64"),
        "bool state_dict": (["bool.pt"], "dtype bool"),
        "0-neuron layer": (["no_neurons.pt"], "at least one input and one output"),
        "LeakyReLU(nan)": (["leaky_nan.pt", "--trust"], "negative_slope is nan"),
        "LeakyReLU(inf)": (["leaky_inf.pt", "--trust"], "negative_slope is inf"),
        "LeakyReLU(-inf)": (["leaky_-inf.pt", "--trust"], "negative_slope is -inf"),
        "gap W0, W2": (["gap.npz"], "W1 is missing but W2, b2 follow"),
        "b1 without W1": (["b_only.npz"], "b1 without the matching W"),
        "stray array": (["extra.npz"], "unexpected arrays slopes"),
        "W01": (["leading_zero.npz"], "W01"),
        "complex .npz": (["complex.npz"], "complex128"),
        "string .npz": (["strings.npz"], "dtype <U1"),
        "empty layer .npz": (["empty_layer.npz"], "at least one input and one output"),
        "integers beyond 2**53": (["big_ints.npz"], "2**53"),
        "a member that is not an .npy": (["raw_member.npz"], "dtype |S5"),
        "out is a pipe": (["he:2-4-1", "--out", "pipe.npz", "--force"], "not a regular file"),
        "a pipe as MODEL": (["pipe.npz"], "not a regular file"),    # reading it would block
        "negative seed": (["he:2-8-1:-5"], "non-negative integer"),
        "zero width": (["he:2-0-1"], ">= 1"),
        "huge width": (["he:2-100000000-1"], "at most 1e+08"),
        "huge repeat": (["he:2-8x1000000000-1"], "at most 1000"),
        "huge digits": (["he:2-99999999999999999999-1"], "at most 1e+08"),
        "nan domain": (["example", "--domain", "nan,1,0,1"], "finite"),
        "box of 1e308": (["he:2-4-1", "--domain=-1e308,1e308,-1e308,1e308"], "1e+150"),
        "interval of 1e308": (["he:1-4-1", "--domain=-1e308,1e308"], "1e+150"),
        "area underflow": (["he:2-4-1", "--domain=0,1e-200,0,1e-200"], "positive finite"),
        "unknown plot format": (["he:2-4-1", "--plot", "x.unknownext"], ".png"),
        "plot without suffix": (["he:2-4-1", "--plot", "noext"], ".png"),
        "plot into a missing folder": (["he:2-4-1", "--plot", "no/dir/x.png"], "does not exist"),
        "out into a missing folder": (["he:2-4-1", "--out", "no/dir/p.npz"], "does not exist"),
        "out is a directory": (["he:2-4-1", "--out", "folder.npz"], "is a directory"),
        "1D GeoJSON": (["he:1-4-1", "--out", "p.geojson"], "GeoJSON needs a 2D partition"),
    }


def test_every_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    probes = _probe_files(tmp_path)
    before = sorted(os.listdir(tmp_path))
    for name, (argv, phrase) in probes.items():
        try:
            code, _, err = _run(capsys, "enumerate", *argv, "--no-progress")
        except BaseException as e:  # a traceback: report which probe, then fail
            pytest.fail(f"{name}: {type(e).__name__}: {e}")
        try:
            _assert_one_line_error(code, err, phrase)
        except AssertionError as e:
            pytest.fail(f"{name}: {e}")
    assert sorted(os.listdir(tmp_path)) == before      # no output file, no temp file left


# ----------------------------------------------------------------------------- output files
@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.savez("model.npz", W0=np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
             b0=np.array([0.0, 0.1, -0.2]), W1=np.ones((1, 3)), b1=np.zeros(1))
    return tmp_path


def _enumerate(capsys, *argv):
    return _run(capsys, "enumerate", "model.npz", "--domain=-1,1,-1,1", "--no-progress", *argv)


@pytest.mark.parametrize("option,name", [("--out", "p.npz"), ("--out", "p.geojson"),
                                         ("--plot", "p.png")])
def test_an_existing_output_is_replaced_only_with_force(folder, capsys, option, name):
    Path(name).write_text("keep")
    code, _, err = _enumerate(capsys, option, name)
    _assert_one_line_error(code, err, f"'{name}' exists", "--force")
    assert Path(name).read_text() == "keep"

    code, _, err = _enumerate(capsys, option, name, "--force")
    assert code == 0, err
    data = Path(name).read_bytes()
    assert data != b"keep" and len(data) > 100
    if name.endswith(".npz"):
        assert len(regions.load(name)) == len(regions.partition(read_model("model.npz"),
                                                                ((-1, 1), (-1, 1))))
    assert sorted(os.listdir(folder)) == sorted(["model.npz", name])  # no temp file left


def test_the_model_file_is_never_overwritten(folder, capsys):
    original = Path("model.npz").read_bytes()
    os.mkdir("sub")
    os.link("model.npz", "hard.npz")
    for out in ("model.npz", "sub/../model.npz", str(folder / "model.npz"), "hard.npz"):
        code, _, err = _enumerate(capsys, "--out", out, "--force")
        _assert_one_line_error(code, err, "model file", "even with --force")
        assert Path("model.npz").read_bytes() == original
    # the model named through a link: --out the link's target is still the input
    os.symlink("model.npz", "link.npz")
    code, _, err = _run(capsys, "enumerate", "link.npz", "--domain=-1,1,-1,1", "--out",
                        "model.npz", "--force", "--no-progress")
    _assert_one_line_error(code, err, "model file")
    assert Path("model.npz").read_bytes() == original


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("option,name", [("--out", "p.geojson"), ("--out", "p.npz"),
                                         ("--plot", "p.png")])
def test_no_write_through_a_symbolic_link(folder, capsys, option, name, force):
    Path("target.txt").write_text("keep")
    os.symlink("target.txt", name)
    code, _, err = _enumerate(capsys, option, name, *force)
    _assert_one_line_error(code, err, "symbolic link", "target.txt")
    assert Path("target.txt").read_text() == "keep" and os.path.islink(name)
    os.remove(name)
    os.symlink("nowhere", name)          # a dangling link: its target is not created
    code, _, err = _enumerate(capsys, option, name, *force)
    _assert_one_line_error(code, err, "symbolic link")
    assert not os.path.lexists("nowhere")


def test_out_and_plot_naming_one_file(folder, capsys):
    Path("p.npz").write_text("keep")
    os.link("p.npz", "p.png")            # two names, one file
    code, _, err = _enumerate(capsys, "--out", "p.npz", "--plot", "p.png", "--force")
    _assert_one_line_error(code, err, "name the same file")
    assert Path("p.npz").read_text() == "keep"


def test_outputs_are_checked_before_the_work(folder, capsys, monkeypatch):
    import regions.api

    def never(*args, **kwargs):
        raise AssertionError("partition ran before the output path was checked")

    monkeypatch.setattr(regions.api, "partition", never)
    Path("p.npz").write_text("keep")
    for argv, phrase in ((["--out", "p.npz"], "--force"), (["--plot", "p.bad"], ".png"),
                         (["--out", "no/p.npz"], "does not exist")):
        code, _, err = _enumerate(capsys, *argv)
        _assert_one_line_error(code, err, phrase)


@pytest.mark.parametrize("name", ["p.geojson", "p.npz", "p.png"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(folder, capsys, monkeypatch, name):
    # the writer dies half way: the file at the name is the old one, whole
    import json

    import matplotlib.figure

    import regions.io

    def half_then_fail(*args, **kwargs):
        path = next(a for a in list(args) + list(kwargs.values())
                    if isinstance(a, (str, os.PathLike)) or hasattr(a, "write"))
        if hasattr(path, "write"):  # a text (json.dump) or binary (np.savez) handle
            path.write(b"partial" if "b" in getattr(path, "mode", "") else "{\"partial")
        else:
            Path(path).write_text("partial")
        raise OSError(28, "No space left on device")

    if name.endswith(".geojson"):
        monkeypatch.setattr(json, "dump", lambda obj, f, **kw: half_then_fail(f))
    elif name.endswith(".npz"):
        monkeypatch.setattr(regions.io.np, "savez", half_then_fail)
    else:
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                            lambda self, path, **kw: half_then_fail(path))
    Path(name).write_text("keep")
    option = "--plot" if name.endswith(".png") else "--out"
    code, _, err = _enumerate(capsys, option, name, "--force")
    _assert_one_line_error(code, err, "cannot write", "No space left on device")
    assert Path(name).read_text() == "keep"
    assert sorted(os.listdir(folder)) == sorted(["model.npz", name])


def test_a_file_appearing_during_the_write_is_not_replaced(folder, capsys, monkeypatch):
    import regions.io

    real_savez = regions.io.np.savez

    def savez_then_someone_writes(path, **arrays):
        real_savez(path, **arrays)
        Path("p.npz").write_text("theirs")

    monkeypatch.setattr(regions.io.np, "savez", savez_then_someone_writes)
    code, _, err = _enumerate(capsys, "--out", "p.npz")
    _assert_one_line_error(code, err, "appeared while it was being written", "--force")
    assert Path("p.npz").read_text() == "theirs"
    assert sorted(os.listdir(folder)) == ["model.npz", "p.npz"]


def test_written_files_get_the_usual_permissions(folder, capsys):
    umask = os.umask(0o022)
    try:
        code, _, err = _enumerate(capsys, "--out", "p.geojson", "--plot", "p.png")
    finally:
        os.umask(umask)
    assert code == 0, err
    for name in ("p.geojson", "p.png"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o644


def test_version(capsys):
    pyproject = (Path(regions.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"regions {version}"


def test_without_hard_links_the_file_is_still_written(folder, capsys, monkeypatch):
    # a file system that refuses os.link (FAT, some network mounts): check, then rename
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    code, _, err = _enumerate(capsys, "--out", "p.npz")
    assert code == 0, err
    assert len(regions.load("p.npz")) > 1
    assert sorted(os.listdir(folder)) == ["model.npz", "p.npz"]


def test_a_compressed_npz_is_sized_before_it_is_expanded(tmp_path, capsys, monkeypatch):
    # a zip bomb: 3 MB of deflated zeros declare a 3.2 GB array (measured on the old
    # code: 25 s and a MemoryError under a 6 GB limit). Scaled down here: the limit
    # is lowered to 2000 parameters (16 kB) and the file holds 10**6 zeros in 9 kB.
    import regions.cli

    monkeypatch.setattr(regions.cli, "MAX_PARAMETERS", 2000, raising=False)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, W0=np.zeros((1, 10 ** 6)), b0=np.zeros(1), W1=np.ones((1, 1)),
                        b1=np.zeros(1))
    assert path.stat().st_size < 8 * 2000
    code, _, err = _run(capsys, "enumerate", str(path), "--no-progress")
    _assert_one_line_error(code, err, "'W0'", "uncompressed", "2e+03")
