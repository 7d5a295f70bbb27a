"""The ``regions`` command.

``regions enumerate MODEL [--domain ...]`` computes the exact partition of a
network and prints a summary; ``regions study`` runs the training study.

MODEL is one of

* ``example``: a built-in He-initialised 2-64x2-1 network (seed 0);
* ``he:SPEC[:SEED]``: a He-initialised network (``W ~ N(0, 2/fan_in)``,
  ``b ~ N(0, 0.1^2)``), SPEC as ``2-64x4-1`` (input, four hidden layers of
  64, one output) or ``1-32-16-1``;
* a ``.pt``/``.pth`` file holding a torch ``nn.Sequential`` or a ``state_dict``;
* a ``.npz`` file of arrays ``W0, b0, W1, b1, ...`` (``W`` shaped ``(out, in)``),
  or a partition file written by ``regions.save`` (its network is used).

Errors (bad model file, bad domain, too many regions) exit with code 2 and a
one-line message.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "he_network", "parse_architecture", "read_model", "parse_domain"]

EXAMPLE = "he:2-64x2-1:0"


class UsageError(Exception):
    """A bad input on the command line; printed as one line, exit code 2."""


# ----------------------------------------------------------------------------- models
def parse_architecture(spec):
    """``"2-64x4-1"`` -> ``[2, 64, 64, 64, 64, 1]``; ``"1-32-16-1"`` -> ``[1, 32, 16, 1]``."""
    sizes = []
    for part in spec.split("-"):
        m = re.fullmatch(r"(\d+)(?:x(\d+))?", part.strip())
        if not m:
            raise UsageError(f"bad architecture {spec!r}: expected sizes joined by '-', "
                             "a hidden size may repeat as WIDTHxCOUNT, e.g. 2-64x4-1")
        n, k = int(m.group(1)), int(m.group(2) or 1)
        if n < 1 or k < 1:
            raise UsageError(f"bad architecture {spec!r}: sizes and repeat counts must be >= 1")
        sizes += [n] * k
    if len(sizes) < 2:
        raise UsageError(f"bad architecture {spec!r}: need at least an input and an output size")
    return sizes


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


def _pairs_from_npz(z, path):
    keys = set(z.files)
    pairs, l = [], 0
    while f"W{l}" in keys:
        if f"b{l}" not in keys:
            raise UsageError(f"bad model file {path!r}: has W{l} but no b{l}")
        pairs.append((np.asarray(z[f"W{l}"]), np.asarray(z[f"b{l}"])))
        l += 1
    if not pairs:
        raise UsageError(f"bad model file {path!r}: an .npz model needs arrays W0, b0, W1, "
                         f"b1, ... (W shaped (out, in)); found {sorted(keys)[:8]}")
    return pairs


def read_model(text):
    """Turn the MODEL argument into something :func:`regions.as_network` accepts."""
    from .network import as_network

    if text == "example":
        text = EXAMPLE
    if text.startswith("he:"):
        parts = text[3:].split(":")
        if len(parts) > 2 or not parts[0]:
            raise UsageError(f"bad model {text!r}: expected he:ARCH[:SEED], e.g. he:2-64x4-1:0")
        seed = 0
        if len(parts) == 2:
            try:
                seed = int(parts[1])
            except ValueError:
                raise UsageError(f"bad model {text!r}: the seed must be an integer, "
                                 f"got {parts[1]!r}") from None
        return as_network(he_network(parse_architecture(parts[0]), seed))
    path = Path(text)
    if not path.exists():
        raise UsageError(f"no model file {text!r}; MODEL is 'example', he:ARCH[:SEED], a torch "
                         ".pt file (nn.Sequential or state_dict) or an .npz of W0, b0, W1, b1, ...")
    if path.suffix == ".npz":
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:
            raise UsageError(f"bad model file {text!r}: not a readable .npz ({e})") from None
        with z:
            if "format" in z.files:
                from .io import load_network

                try:
                    return load_network(path)
                except ValueError as e:
                    raise UsageError(f"bad model file {text!r}: {e}") from None
            pairs = _pairs_from_npz(z, text)
    else:
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise UsageError(f"bad model file {text!r}: torch.load failed "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                             "expected a saved nn.Sequential or state_dict") from None
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        pairs = obj
    try:
        return as_network(pairs)
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
    lines.append(("seconds", f"{s['seconds']:.3f}"))
    for k, v in lines:
        print(f"{k + ':':<10}{v}", file=stream)


# ----------------------------------------------------------------------------- commands
def _enumerate(args):
    from .api import TooManyRegions, partition

    network = read_model(args.model)
    domain = parse_domain(args.domain, network.input_dim)
    if args.max_regions is not None and args.max_regions < 1:
        raise UsageError(f"bad --max-regions {args.max_regions}: must be a positive integer")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix not in (".npz", ".geojson", ".json"):
        raise UsageError(f"bad --out {args.out!r}: the suffix must be .npz (partition file) "
                         "or .geojson (2D polygons)")
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

        if out.suffix == ".npz":
            save(p, out)
        else:
            try:
                to_geojson(p, out)
            except ValueError as e:
                raise UsageError(str(e)) from None
        print(f"wrote {out}", file=sys.stderr)
    if args.plot:
        _plot(p, args.plot)
    return 0


def _plot(p, path):
    try:
        import regions.plot as rplot
    except ImportError as e:
        raise UsageError(f"--plot needs regions.plot, which this installation lacks ({e})") from None
    fn = getattr(rplot, "partition", None)
    if fn is None:
        raise UsageError("--plot needs regions.plot.partition, which this installation lacks")
    import matplotlib

    matplotlib.use("Agg")
    result = fn(p)
    fig = getattr(result, "figure", None) or result
    if isinstance(result, tuple):  # (fig, ax)
        fig = result[0]
    if not hasattr(fig, "savefig"):
        import matplotlib.pyplot as plt

        fig = plt.gcf()
    fig.savefig(path, dpi=150, bbox_inches="tight")
    print(f"wrote {path}", file=sys.stderr)


def _study(args):
    from .study import run_study

    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UsageError(f"bad --seeds {args.seeds!r}: expected integers separated by "
                             "commas, e.g. 0,1,2") from None
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"bad --workers {args.workers}: must be >= 1")
    try:
        # run_study takes the number of workers as its executor: N local processes
        # (1: in this process), started and shut down by the study; None: its default, 2
        result = run_study(preset=args.preset, out_dir=args.out, executor=args.workers,
                           progress=progress, seeds=seeds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if result is not None and not progress:  # with progress on, the study says it
        print(f"report: {result}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="regions",
        description="Exact linear regions of small ReLU networks in 1D and 2D.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    e = sub.add_parser(
        "enumerate", help="every linear region of a network over a domain",
        description="Compute the exact partition of MODEL over --domain and print a summary.")
    e.add_argument("model", metavar="MODEL",
                   help="'example', he:ARCH[:SEED] (e.g. he:2-64x4-1:0), a torch .pt file "
                        "(nn.Sequential or state_dict) or an .npz of W0, b0, W1, b1, ...")
    e.add_argument("--domain", metavar="BOUNDS",
                   help="'lo,hi' for a 1-input network or 'x0,x1,y0,y1' for a box "
                        "(default: [-3, 3] per input); write --domain=-3,3 when it starts "
                        "with a minus sign")
    e.add_argument("--max-regions", type=int, metavar="N",
                   help="stop with an error (exit 2) past N regions")
    e.add_argument("--out", metavar="FILE", help="write the partition: .npz or .geojson (2D)")
    e.add_argument("--plot", metavar="FILE", help="draw the partition to an image file")
    e.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    e.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    e.set_defaults(func=_enumerate)

    s = sub.add_parser("study", help="train networks and couple regions to training speed",
                       description="Run the study and write its report.")
    s.add_argument("--preset", default="quick",
                   help="quick (minutes, the default), paper (hours) or tiny (a smoke test)")
    s.add_argument("--out", default="report", metavar="DIR", help="report folder (default: report)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that run the training jobs (default 2; 1 runs them "
                        "in this process)")
    s.add_argument("--seeds", metavar="LIST", help="seeds to run, e.g. 0,1,2 (default: the preset's)")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress output on stderr (default: when stderr is a terminal)")
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
    # cores from each other (see regions.study.study._worker_init)
    import os

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
