"""The ``regions`` command.

``regions enumerate MODEL [--domain ...]`` computes the exact partition of a
network and prints a summary; ``regions study`` runs the training study.

MODEL is one of

* ``example``: a built-in He-initialised 2-64x2-1 network (seed 0);
* ``he:SPEC[:SEED]``: a He-initialised network (``W ~ N(0, 2/fan_in)``,
  ``b ~ N(0, 0.1^2)``), SPEC as ``2-64x4-1`` (input, four hidden layers of
  64, one output) or ``1-32-16-1``;
* a ``.pt``/``.pth`` file holding a torch ``state_dict`` (read with
  ``torch.load(weights_only=True)``: tensors only, nothing is executed), or a
  whole pickled ``nn.Sequential`` with ``--trust`` (``trusted=True`` in
  Python) only: unpickling runs whatever code the file names;
* a ``.npz`` file of arrays ``W0, b0, W1, b1, ...`` (``W`` shaped ``(out, in)``),
  or a partition file written by ``regions.save`` (its network is used);
  read with ``allow_pickle=False``.

``--out`` and ``--plot`` never replace an existing file without ``--force``,
never the model file, and never write through (or replace) a symbolic link;
each file is written to a temporary file in its folder and renamed into place.

Errors (bad model file, bad domain, bad output file, too many regions) exit
with code 2 and a one-line message.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["main", "he_network", "parse_architecture", "read_model", "parse_domain"]

EXAMPLE = "he:2-64x2-1:0"

# bounds on a he: network (and on an .npz model's arrays), checked before anything
# is allocated: far beyond what the engines can partition, small enough that
# drawing or reading the weights is harmless
MAX_LAYERS = 1000
MAX_PARAMETERS = 10 ** 8

NPZ_LAYER_KEY = re.compile(r"([Wb])(0|[1-9][0-9]*)")


class UsageError(ValueError):
    """A bad input (model, domain, option, output file); the command prints it as
    one line and exits with code 2."""


# ----------------------------------------------------------------------------- models
def parse_architecture(spec):
    """``"2-64x4-1"`` -> ``[2, 64, 64, 64, 64, 1]``; ``"1-32-16-1"`` -> ``[1, 32, 16, 1]``.

    At most :data:`MAX_LAYERS` sizes and :data:`MAX_PARAMETERS` weights and
    biases, checked before the list is built.

    Examples
    --------
    >>> parse_architecture("2-8x3-1")
    [2, 8, 8, 8, 1]
    """
    runs = []  # (size, repeat count)
    for part in spec.split("-"):
        m = re.fullmatch(r"([0-9]+)(?:x([0-9]+))?", part.strip())
        if not m:
            raise UsageError(f"bad architecture {spec!r}: expected sizes joined by '-', "
                             "a hidden size may repeat as WIDTHxCOUNT, e.g. 2-64x4-1")
        n, k = int(m.group(1)), int(m.group(2) or 1)
        if n < 1 or k < 1:
            raise UsageError(f"bad architecture {spec!r}: sizes and repeat counts must be >= 1")
        runs.append((n, k))
    n_layers = sum(k for _, k in runs)
    if n_layers < 2:
        raise UsageError(f"bad architecture {spec!r}: need at least an input and an output size")
    if n_layers > MAX_LAYERS:
        raise UsageError(f"bad architecture {spec!r}: {n_layers} sizes; at most {MAX_LAYERS} "
                         "are accepted")
    parameters, previous = 0, None
    for n, k in runs:  # weights and biases of every layer, without expanding the runs
        if previous is not None:
            parameters += n * previous + n
        parameters += (k - 1) * (n * n + n)
        previous = n
    if parameters > MAX_PARAMETERS:
        raise UsageError(f"bad architecture {spec!r}: {parameters:.3g} weights and biases; "
                         f"at most {MAX_PARAMETERS:.0e} are accepted")
    return [n for n, k in runs for _ in range(k)]


def he_network(sizes, seed=0):
    """He-initialised ``(W, b)`` pairs: ``W ~ N(0, 2/fan_in)``, ``b ~ N(0, 0.1^2)``,
    drawn layer by layer (W then b) from ``numpy.random.default_rng(seed)``.

    The benchmark and the CLI's ``he:`` models use this, so a spec and a seed name
    one network everywhere.
    """
    if isinstance(sizes, str):
        sizes = parse_architecture(sizes)
    rng = np.random.default_rng(seed)
    pairs = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))
        b = rng.normal(0.0, 0.1, size=fan_out)
        pairs.append((W, b))
    return pairs


def _npz_array(z, key, path):
    """One array of an open .npz, with the errors of a crafted file as UsageError.

    The size the archive declares is checked before anything is decompressed: a
    small compressed file can otherwise expand to gigabytes.
    """
    members = z.zip.namelist()
    size = z.zip.getinfo(f"{key}.npy" if f"{key}.npy" in members else key).file_size
    if size > 8 * MAX_PARAMETERS:
        raise UsageError(f"bad model file {path!r}: array {key!r} holds {size:.3g} bytes "
                         f"uncompressed; at most {8 * MAX_PARAMETERS:.0e} ({MAX_PARAMETERS:.0e} "
                         "float64 parameters) are accepted")
    try:
        return np.asarray(z[key])
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise UsageError(f"bad model file {path!r}: array {key!r} is an object array, "
                             "which only unpickling could read (never done); a model .npz "
                             "holds numeric arrays") from None
        raise UsageError(f"bad model file {path!r}: array {key!r} is unreadable ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"bad model file {path!r}: array {key!r} is unreadable ({e})") from None


def _pairs_from_npz(z, path):
    """``W0, b0, W1, b1, ...`` of an open .npz: exactly these keys, no gap, nothing else."""
    keys = set(z.files)
    n_layers = 0
    while f"W{n_layers}" in keys:
        n_layers += 1
    expected = {f"{k}{l}" for l in range(n_layers) for k in "Wb"}
    accepted = ("an .npz model holds exactly the arrays W0, b0, W1, b1, ..., WL, bL "
                "(W shaped (out, in)), numbered from 0 without gaps")
    if not n_layers:
        raise UsageError(f"bad model file {path!r}: no array W0; {accepted}; found "
                         f"{sorted(keys)[:8]}")
    missing = sorted(expected - keys)
    if missing:
        raise UsageError(f"bad model file {path!r}: has W0..W{n_layers - 1} but not "
                         f"{', '.join(missing)}; {accepted}")
    stray = sorted(keys - expected)
    if stray:
        layer_like = [k for k in stray if NPZ_LAYER_KEY.fullmatch(k)]
        other = [k for k in stray if k not in layer_like]
        problems = []
        if any(k.startswith("W") for k in layer_like):
            problems.append(f"W{n_layers} is missing but {', '.join(layer_like)} follow "
                            "(a gap in the layer numbering)")
        elif layer_like:
            problems.append(f"{', '.join(layer_like)} without the matching W")
        if other:
            problems.append(f"unexpected arrays {', '.join(other[:8])}")
        raise UsageError(f"bad model file {path!r}: {'; '.join(problems)}; {accepted}")
    return [(_npz_array(z, f"W{l}", path), _npz_array(z, f"b{l}", path))
            for l in range(n_layers)]


_TRUST_HINT = ("loading it means unpickling, which runs whatever code the file names; it "
               "was refused. Only for a file you trust: pass --trust on the command line "
               "(trusted=True in Python). Or save and pass model.state_dict(), which loads "
               "without it")


def _read_npz(path, text):
    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickled" in str(e):
            raise UsageError(f"bad model file {text!r}: not an .npz archive (numpy would read "
                             "it as a pickle, which is never loaded)") from None
        raise UsageError(f"bad model file {text!r}: not a readable .npz ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise UsageError(f"bad model file {text!r}: not a readable .npz ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise UsageError(f"bad model file {text!r}: a single .npy array, not an .npz archive "
                         "of W0, b0, W1, b1, ...")
    with z:
        if "format" in z.files:
            from .io import load_network

            try:
                return load_network(path)
            except ValueError as e:
                raise UsageError(f"bad model file {text!r}: {e}") from None
        return _pairs_from_npz(z, text)


def _one_line(error):
    """``TypeName: first line of the message`` of an exception."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _read_torch(path, text, trusted):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if not trusted and "Weights only load failed" in str(e):
            raise UsageError(f"bad model file {text!r}: it holds Python objects beyond tensors "
                             f"(such as a whole saved nn.Sequential); {_TRUST_HINT}") from None
        raise UsageError(f"bad model file {text!r}: torch.load failed ({_one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - whatever a crafted file makes torch raise
        raise UsageError(f"bad model file {text!r}: torch.load failed ({_one_line(e)}); "
                         "expected a saved state_dict (or, with --trust, nn.Sequential)") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return obj


def read_model(text, trusted=False):
    """Turn the MODEL argument into a :class:`regions.Network`.

    Parameters
    ----------
    text : str
        ``example``, ``he:ARCH[:SEED]``, or the path of a ``.npz`` or torch file.
    trusted : bool
        Allow a torch file to be unpickled in full (a whole saved ``nn.Sequential``).
        Unpickling runs whatever code the file names: set it only for files you
        trust. Without it a torch file is read with ``weights_only=True`` (tensors,
        e.g. a ``state_dict``); an ``.npz`` is never unpickled.

    Raises
    ------
    UsageError
        (a ``ValueError``) naming the problem: a missing or unreadable file, one
        that would need unpickling, an unusable network.

    Examples
    --------
    >>> read_model("he:2-8-1:0").widths
    [8]
    """
    from .network import as_network

    if text == "example":
        text = EXAMPLE
    if text.startswith("he:"):
        parts = text[3:].split(":")
        if len(parts) > 2 or not parts[0]:
            raise UsageError(f"bad model {text!r}: expected he:ARCH[:SEED], e.g. he:2-64x4-1:0")
        seed = 0
        if len(parts) == 2:
            if not re.fullmatch(r"[0-9]+", parts[1].strip()):
                raise UsageError(f"bad model {text!r}: the seed must be a non-negative "
                                 f"integer, got {parts[1]!r}")
            seed = int(parts[1])
        return as_network(he_network(parse_architecture(parts[0]), seed))
    path = Path(text)
    if not text or not path.exists():
        raise UsageError(f"no model file {text!r}; MODEL is 'example', he:ARCH[:SEED], a torch "
                         ".pt file (state_dict; nn.Sequential with --trust) or an .npz of "
                         "W0, b0, W1, b1, ...")
    if not path.is_file():
        raise UsageError(f"bad model file {text!r}: not a regular file (a directory, pipe "
                         "or device)")
    if path.suffix.lower() == ".npz":
        model = _read_npz(path, text)
    else:
        model = _read_torch(path, text, trusted)
    try:
        return as_network(model)
    except (ValueError, TypeError) as e:
        raise UsageError(f"bad model file {text!r}: {e}") from None


# ----------------------------------------------------------------------------- domains
def parse_domain(text, input_dim):
    """``"-3,3"`` -> ``(-3.0, 3.0)``; ``"-3,3,-2,2"`` -> ``((-3.0, 3.0), (-2.0, 2.0))``.
    ``None`` gives ``[-3, 3]`` in each of the network's input dimensions (1 or 2)."""
    if text is None:
        if input_dim == 1:
            return (-3.0, 3.0)
        if input_dim == 2:
            return ((-3.0, 3.0), (-3.0, 3.0))
        raise UsageError(f"the network takes {input_dim} inputs; only 1- and 2-input networks "
                         "can be enumerated from the command line")
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise UsageError(f"bad domain {text!r}: expected 'lo,hi' (1D) or 'x0,x1,y0,y1' "
                         "(2D box), numbers separated by commas") from None
    if len(vals) not in (2, 4):
        raise UsageError(f"bad domain {text!r}: expected 2 numbers 'lo,hi' (1D) or 4 "
                         f"'x0,x1,y0,y1' (2D box), got {len(vals)}")
    if not all(np.isfinite(vals)):
        raise UsageError(f"bad domain {text!r}: bounds must be finite numbers")
    pairs = [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
    for lo, hi in pairs:
        if not hi > lo:
            raise UsageError(f"bad domain {text!r}: ({lo}, {hi}) is empty or inverted; "
                             "each range must have lo < hi")
    if len(pairs) != input_dim:
        raise UsageError(f"bad domain {text!r}: it is {len(pairs)}D but the network takes "
                         f"{input_dim} input{'s' if input_dim != 1 else ''}")
    return pairs[0] if len(pairs) == 1 else tuple(pairs)


# ----------------------------------------------------------------------------- summary
def _describe(network):
    sizes = [network.input_dim] + network.widths + [network.output_dim]
    acts = sorted({"ReLU" if s == 0 else f"LeakyReLU({s:g})" for s in network.slopes})
    arch = "-".join(map(str, sizes))
    enc = getattr(network, "encoding", None)
    if enc is not None:  # coordinates -> features -> hidden layers
        arch = (f"{network.input_dim} -> {type(enc).__name__} ({enc.out_features} features) -> "
                + "-".join(map(str, sizes[1:])))
    return f"{arch} ({network.n_hidden} hidden neurons, {', '.join(acts) or 'affine'})"


def summary(p, seconds):
    """The numbers ``regions enumerate`` prints, as a dict."""
    m = np.asarray(p.measure, dtype=np.float64)
    out = {"network": _describe(p.network), "domain": repr(p.domain), "dim": int(p.dim),
           "regions": len(p)}
    if p.dim == 2:
        out["vertices"] = int(np.asarray(p.vertices).shape[0])
    label = "area" if p.dim == 2 else "length"
    out[label] = {"min": float(m.min()), "median": float(np.median(m)),
                  "max": float(m.max()), "sum": float(m.sum())}
    if "crossings" in p.stats:      # an encoded 2D partition with its certified crossings
        out["crossings"] = {"certified": int(p.stats["crossings"]),
                            "uncertified": len(p.stats["uncertified_crossings"]),
                            "error_max": float(p.stats["crossing_error_max"])}
    out["seconds"] = round(float(seconds), 4)
    return out


def _print_summary(s, stream):
    label = "area" if s["dim"] == 2 else "length"
    lines = [("network", s["network"]), ("domain", s["domain"]),
             ("regions" if s["dim"] == 2 else "pieces", f"{s['regions']}")]
    if "vertices" in s:
        lines.append(("vertices", f"{s['vertices']}"))
    st = s[label]
    lines.append((label, f"min {st['min']:.6g}  median {st['median']:.6g}  "
                         f"max {st['max']:.6g}  sum {st['sum']:.12g}"))
    if "crossings" in s:
        c = s["crossings"]
        lines.append(("crossings", f"{c['certified']} certified (corners within "
                                   f"{c['error_max']:.2g} of them), {c['uncertified']} "
                                   "junctions not certified"))
    lines.append(("seconds", f"{s['seconds']:.3f}"))
    for k, v in lines:
        print(f"{k + ':':<10}{v}", file=stream)


# ----------------------------------------------------------------------------- output files
OUT_SUFFIXES = (".npz", ".geojson", ".json")


def _plot_formats():
    import matplotlib.figure

    return sorted(matplotlib.figure.Figure().canvas.get_supported_filetypes())


def _output_path(text, option, force, model):
    """Check an output file before any work is done: its folder exists, it is not the
    model file, not a symbolic link nor a directory, and it exists only with --force."""
    path = Path(text)
    if path.is_symlink():
        raise UsageError(f"{option} {text!r} is a symbolic link (to {os.readlink(path)!r}); "
                         "regions neither writes through a link nor replaces one: remove it "
                         "or name another file")
    if model is not None and (os.path.realpath(path) == os.path.realpath(model)
                              or (path.exists() and os.path.samefile(path, model))):
        raise UsageError(f"{option} {text!r} is the model file {str(model)!r}; the input is "
                         "never overwritten, even with --force: name another file")
    if path.is_dir():
        raise UsageError(f"{option} {text!r} is a directory; name a file")
    if path.exists() and not path.is_file():
        raise UsageError(f"{option} {text!r} is not a regular file (a device or a pipe?); "
                         "regions replaces only regular files")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {text!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {text!r}: the folder {str(folder)!r} is not writable")
    if path.exists() and not force:
        raise UsageError(f"{option} {text!r} exists; pass --force to replace it")
    return path


def _write_atomically(path, write, force):
    """``write(tmp)`` to a new file in a private temporary folder beside ``path``, then
    move it to ``path`` in one step: readers see the old file or the complete new one,
    never a part, and whatever the writer leaves behind goes with the folder.

    Without ``force`` the move refuses a file created at ``path`` in the meantime
    (a hard link fails where the name exists); with it, ``os.replace`` swaps the name
    (a symbolic link put there meanwhile is replaced, its target never written).
    """
    folder = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        tmp = os.path.join(folder, path.name)
        write(tmp)
        appeared = UsageError(f"{str(path)!r} appeared while it was being written; pass "
                              "--force to replace it")
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise appeared from None
            except OSError:  # a file system without hard links: check, then rename
                if os.path.lexists(path):
                    raise appeared from None
                os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_outputs(args, dim):
    """The --out and --plot paths, checked before the partition is computed."""
    model = Path(args.model)
    model = model if args.model and model.is_file() else None
    out = plot = None
    if args.out is not None:
        if Path(args.out).suffix not in OUT_SUFFIXES:
            raise UsageError(f"bad --out {args.out!r}: the suffix must be .npz (partition file) "
                             "or .geojson (2D polygons)")
        if dim != 2 and Path(args.out).suffix != ".npz":
            raise UsageError(f"bad --out {args.out!r}: GeoJSON needs a 2D partition; write a "
                             "1D partition to an .npz")
        out = _output_path(args.out, "--out", args.force, model)
    if args.plot is not None:
        formats = _plot_formats()
        if Path(args.plot).suffix.lower()[1:] not in formats:
            raise UsageError(f"bad --plot {args.plot!r}: the suffix names the image format, "
                             f"one of {', '.join('.' + f for f in formats)}")
        plot = _output_path(args.plot, "--plot", args.force, model)
    if out is not None and plot is not None and (
            os.path.realpath(out) == os.path.realpath(plot)
            or (out.exists() and plot.exists() and os.path.samefile(out, plot))):
        raise UsageError(f"--out {args.out!r} and --plot {args.plot!r} name the same file")
    return out, plot


# ----------------------------------------------------------------------------- commands
def _enumerate(args):
    from .api import TooManyRegions, partition

    network = read_model(args.model, trusted=args.trust)
    domain = parse_domain(args.domain, network.input_dim)
    if args.max_regions is not None and args.max_regions < 1:
        raise UsageError(f"bad --max-regions {args.max_regions}: must be a positive integer")
    out, plot = _check_outputs(args, network.input_dim)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    t0 = time.perf_counter()
    try:
        p = partition(network, domain, max_regions=args.max_regions, progress=progress)
    except TooManyRegions as e:
        raise UsageError(f"too many regions for --max-regions {args.max_regions}: {e}") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    seconds = time.perf_counter() - t0
    s = summary(p, seconds)
    if args.json:
        import json

        print(json.dumps(s))
    else:
        _print_summary(s, sys.stdout)
    if out is not None:
        from .io import save, to_geojson

        def write_out(tmp):
            if out.suffix == ".npz":
                save(p, tmp)
            else:
                to_geojson(p, tmp)

        _write(out, write_out, args.force)
    if plot is not None:
        _write(plot, lambda tmp: _plot(p, tmp, plot.suffix.lower()[1:]), args.force)
    return 0


def _write(path, write, force):
    try:
        _write_atomically(path, write, force)
    except OSError as e:
        raise UsageError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    print(f"wrote {path}", file=sys.stderr)


def _plot(p, path, image_format):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import regions.plot as rplot

    fig = rplot.partition(p).figure
    try:
        fig.savefig(path, format=image_format, dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)


def _study(args):
    from .study import run_study

    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"bad --seeds {args.seeds!r}: expected integers separated by "
                             "commas, e.g. 0,1,2") from None
    # None: the study decides (a bar in a terminal, plain lines with a heartbeat otherwise)
    progress = args.progress
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"bad --workers {args.workers}: must be >= 1")
    if args.scheduler is not None and args.workers is not None:
        raise UsageError("--scheduler and --workers exclude each other: the cluster's "
                         "workers run the jobs")
    if args.report_only:
        from .study import report_from_jobs

        try:
            result = report_from_jobs(args.out, preset=args.preset)
        except ValueError as e:
            raise UsageError(str(e)) from None
        print(f"report: {result}")
        return 0
    client = _dask_client(args.scheduler) if args.scheduler is not None else None
    try:
        # run_study takes the number of workers as its executor: N local processes
        # (1: in this process), started and shut down by the study; None: its default, 2;
        # with --scheduler, the cluster's executor (the cluster stays up after the study)
        executor = client.get_executor() if client is not None else args.workers
        result = run_study(preset=args.preset, out_dir=args.out, executor=executor,
                           progress=progress, seeds=seeds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        if client is not None:
            client.close()
    if result is not None and progress is False:  # otherwise the study said it on stderr
        print(f"report: {result}")
    return 0


def _dask_client(address):
    """A ``dask.distributed`` client of the scheduler at ``address`` (``tcp://HOST:PORT``)."""
    if not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://\S+", address):
        raise UsageError(f"bad --scheduler {address!r}: expected a dask scheduler address "
                         "such as tcp://HOST:8786")
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs dask.distributed: pip install 'regions[dask]'") from None
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UsageError(f"no dask scheduler answers at {address} ({e})") from None


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="regions",
        description="Exact linear regions of small ReLU networks in 1D and 2D.")
    parser.add_argument("--version", action="version", version=f"regions {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    e = sub.add_parser(
        "enumerate", help="every linear region of a network over a domain",
        description="Compute the exact partition of MODEL over --domain and print a summary.")
    e.add_argument("model", metavar="MODEL",
                   help="'example', he:ARCH[:SEED] (e.g. he:2-64x4-1:0), a torch .pt file "
                        "(a state_dict; a whole nn.Sequential needs --trust) or an .npz of "
                        "W0, b0, W1, b1, ...")
    e.add_argument("--trust", action="store_true",
                   help="unpickle a torch MODEL file in full (a saved nn.Sequential); this "
                        "runs any code the file names: only for files you trust")
    e.add_argument("--domain", metavar="BOUNDS",
                   help="'lo,hi' for a 1-input network or 'x0,x1,y0,y1' for a box "
                        "(default: [-3, 3] per input); write --domain=-3,3 when it starts "
                        "with a minus sign")
    e.add_argument("--max-regions", type=int, metavar="N",
                   help="stop with an error (exit 2) past N regions")
    e.add_argument("--out", metavar="FILE", help="write the partition: .npz or .geojson (2D)")
    e.add_argument("--plot", metavar="FILE",
                   help="draw the partition to an image file (.png, .pdf, .svg, ...)")
    e.add_argument("--force", action="store_true",
                   help="replace existing --out / --plot files (never the MODEL file, "
                        "never through a symbolic link)")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    e.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    e.set_defaults(func=_enumerate)

    s = sub.add_parser("study", help="train networks and couple regions to training speed",
                       description="Run the study and write its report.")
    from .study.presets import preset_time

    s.add_argument("--preset", default="quick",
                   help=f"quick (the default; {preset_time('quick')}), paper "
                        f"({preset_time('paper')}) or tiny (a smoke test); the kernels' "
                        "first compile (about a minute, once per machine) comes on top")
    s.add_argument("--out", default="report", metavar="DIR", help="report folder (default: report)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that run the training jobs (default 2; 1 runs them "
                        "in this process)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the jobs on a dask.distributed cluster, e.g. tcp://HOST:8786 "
                        "(needs pip install 'regions[dask]'; the workers need regions "
                        "installed too)")
    s.add_argument("--seeds", metavar="LIST", help="seeds to run, e.g. 0,1,2 (default: the preset's)")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress on stderr (default on: one bar in a terminal, plain lines "
                        "with a heartbeat every 30 s otherwise; --no-progress: silent)")
    s.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the jobs already saved in "
                        "--out (for instance of an interrupted study)")
    s.set_defaults(func=_study)
    return parser


def _fix_negative_values(argv):
    """Let ``--domain -3,3`` work: argparse takes ``-3,3`` for an option otherwise."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--domain" and i + 1 < len(argv) and re.fullmatch(r"-[\d.].*", argv[i + 1]):
            out.append(f"--domain={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def main(argv=None):
    """Entry point of the ``regions`` console script; returns the exit code."""
    # OpenMP threads (torch's, Numba's) wait passively unless the user says
    # otherwise: spinning pools of several processes on few cores take the
    # cores from each other (see regions._shared._process_init)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_fix_negative_values(argv))
    try:
        return args.func(args)
    except UsageError as e:
        print(f"regions {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"regions {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"regions {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
