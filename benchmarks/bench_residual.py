"""Residual networks: regions' region counts against regioncam's residual layer.

    python benchmarks/bench_residual.py            # prints the table
    python benchmarks/bench_residual.py --write    # and writes its section of RESULTS.md

A residual network ``2 -> w``, ReLU, then ``B`` blocks ``h = relu(h + L2 relu(L1 h))``,
then ``w -> 1`` (the 1D cases take one input) is given to both tools with the same
He-initialised weights (``W ~ N(0, 2/fan_in)``, ``b ~ N(0, 0.1^2)``, numpy
``default_rng(seed)``, :func:`regions.cli.he_network` for every Linear):

* regions: the torch module (a custom ``forward``), read by tracing it
  (:mod:`regions.trace`, the residual streams become carried units) and
  partitioned by ``regions.partition`` in float64;
* regioncam: ``regioncam.Sequential(Linear, ReLU, Residual(Sequential(Linear,
  ReLU, Linear)), ReLU, ..., Linear)`` in float32 (its ``Residual(f)`` is
  ``x + f(x)``), ``num_faces`` in 2D and ``num_edges`` (pieces) in 1D.

Both get the weights rounded to float32 (what regioncam computes with), so the
counts differ only by float32 arithmetic inside regioncam: regions thinner
than float32 resolution merged, split or dropped, and lines passing within
float32 rounding of a vertex decided differently. Each tool runs in this
process, warm: one untimed call first, then the best of ``--repeat`` calls.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# (input dim, width, residual blocks, domain half-width, seed)
CASES = [(2, 32, 2, 3.0, 0), (2, 64, 2, 3.0, 0), (2, 64, 3, 3.0, 1), (1, 256, 4, 3.0, 0)]
SECTION = "## Residual networks: regions vs regioncam"
# max over k outputs (input dim 2, hidden width, k, seed): regioncam's max_pool
MAX_CASES = [(32, 2, 0), (32, 3, 0), (32, 4, 0), (32, 8, 0)]


def _weights(d_in, width, blocks, seed):
    """float32-representable float64 weights: input layer, 2 per block, output layer."""
    from regions.cli import he_network

    sizes = [d_in, width] + [width] * (2 * blocks) + [1]
    pairs = he_network(sizes, seed)
    return [(W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
            for W, b in pairs]


def residual_module(pairs):
    """The torch module of the residual network with these ``(W, b)`` (``W`` (out, in))."""
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(*pairs[0][0].shape[::-1])
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Linear(*pairs[i][0].shape[::-1]), nn.ReLU(),
                              nn.Linear(*pairs[i + 1][0].shape[::-1]))
                for i in range(1, len(pairs) - 1, 2))
            self.out = nn.Linear(*pairs[-1][0].shape[::-1])

        def forward(self, x):
            h = torch.relu(self.inp(x))
            for blk in self.blocks:
                h = torch.relu(h + blk(h))
            return self.out(h)

    model = Residual().double()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, (W, b) in zip(linears, pairs):
            lin.weight.copy_(torch.as_tensor(W))
            lin.bias.copy_(torch.as_tensor(b))
    return model


def regioncam_count(pairs, d_in, half):
    """regioncam's count on the residual network of ``pairs`` (float32)."""
    import regioncam

    def lin(W, b):
        return regioncam.Linear(np.ascontiguousarray(W.T, dtype=np.float32), b.astype(np.float32))

    layers = [lin(*pairs[0]), regioncam.ReLU()]
    for i in range(1, len(pairs) - 1, 2):
        block = regioncam.Sequential(lin(*pairs[i]), regioncam.ReLU(), lin(*pairs[i + 1]))
        layers += [regioncam.Residual(block), regioncam.ReLU()]
    layers.append(lin(*pairs[-1]))
    rc = regioncam.Regioncam(size=half) if d_in == 2 else regioncam.Regioncam1D((-half, half))
    rc.add(regioncam.Sequential(*layers))
    return int(rc.num_faces if d_in == 2 else rc.num_edges)


def regions_count(net, d_in, half):
    """regions' count on the traced network ``net`` (float64)."""
    import regions

    domain = (-half, half) if d_in == 1 else ((-half, half), (-half, half))
    return len(regions.partition(net, domain))


def max_model(width, k, seed, d_in=2):
    """``(model, pairs)``: the torch module ``d_in -> width``, ReLU, ``width -> k``, max
    over the ``k`` outputs, with He-initialised weights rounded to float32 (``pairs``)."""
    import torch
    from torch import nn

    from regions.cli import he_network

    pairs = [(W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
             for W, b in he_network([d_in, width, k], seed)]

    class MaxOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(d_in, width), nn.Linear(width, k)

        def forward(self, x):
            return self.b(torch.relu(self.a(x))).max(dim=-1, keepdim=True).values

    model = MaxOut().double()
    with torch.no_grad():
        for lin, (W, b) in ((model.a, pairs[0]), (model.b, pairs[1])):
            lin.weight.copy_(torch.as_tensor(W))
            lin.bias.copy_(torch.as_tensor(b))
    return model, pairs


def max_counts(width, k, seed, half=3.0, d_in=2):
    """``(regions, regions merged by output map, regioncam)`` on :func:`max_model`
    (regioncam: ``max_pool``; 1D counts are pieces). The middle count joins
    neighbours whose output maps agree to 1e-9: equal to the first when regions
    cuts only where the argmax changes."""
    import regioncam
    import regions
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    model, ((W1, b1), (W2, b2)) = max_model(width, k, seed, d_in)
    p = regions.partition(model, (-half, half) if d_in == 1 else ((-half, half),) * 2)
    A, c = p.affine
    if d_in == 1:
        a, b = np.arange(len(p) - 1), np.arange(1, len(p))
    else:
        ef = p.edge_faces
        a, b = ef[(ef[:, 0] >= 0) & (ef[:, 1] >= 0)].T
    one_map = (np.abs(A[a] - A[b]).reshape(len(a), -1).max(axis=1, initial=0) <= 1e-9) & (
        np.abs(c[a] - c[b]).max(axis=1) <= 1e-9)
    graph = sp.coo_matrix((np.ones(one_map.sum()), (a[one_map], b[one_map])), shape=(len(p),) * 2)
    merged = connected_components(graph, directed=False)[0]
    rc = regioncam.Regioncam(size=half) if d_in == 2 else regioncam.Regioncam1D((-half, half))

    def lin(W, b):
        return regioncam.Linear(np.ascontiguousarray(W.T, dtype=np.float32), b.astype(np.float32))

    rc.add(regioncam.Sequential(lin(W1, b1), regioncam.ReLU(), lin(W2, b2)))
    rc.max_pool()
    return len(p), int(merged), int(rc.num_faces if d_in == 2 else rc.num_edges)


def max_table(rows):
    head = ["network", "regions (regions)", "regions merged by output map", "regioncam max_pool"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (width, k, seed), (n, merged, rc) in rows:
        out.append(f"| 2-{width}-1 then max over {k} (seed {seed}) | {n:,} | {merged:,} | {rc:,} |")
    return "\n".join(out)


def _best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def run(repeat=3, with_regioncam=True):
    rows = []
    for d_in, width, blocks, half, seed in CASES:
        from regions import as_network

        pairs = _weights(d_in, width, blocks, seed)
        model = residual_module(pairs)
        net, t_trace = _best(lambda: as_network(model), repeat)
        n_ours, t_ours = _best(lambda: regions_count(net, d_in, half), repeat)
        row = {"case": f"{d_in}-{width}-res{blocks}-1", "domain": f"[-{half:g},{half:g}]^{d_in}",
               "seed": seed, "regions": n_ours, "regions_s": t_ours, "trace_s": t_trace,
               "carried": net.n_carried}
        if with_regioncam:
            n_rc, t_rc = _best(lambda: regioncam_count(pairs, d_in, half), repeat)
            row.update(regioncam=n_rc, regioncam_s=t_rc)
        rows.append(row)
        print(row, flush=True)
    return rows


SEQUENTIAL_CASES = [(2, 64, 3, 3.0, 0), (2, 128, 3, 3.0, 1)]


def sequential_rows(repeat=3):
    """A plain ``nn.Sequential`` MLP read as before (the direct reader of
    :func:`regions.as_network`) and through the tracer: both read times, both
    partitions' times and counts (the same network, so the same regions)."""
    import torch
    from torch import nn

    import regions
    from regions.trace import trace

    rows = []
    for d_in, width, depth, half, seed in SEQUENTIAL_CASES:
        torch.manual_seed(seed)
        mods, n = [], d_in
        for _ in range(depth):
            mods += [nn.Linear(n, width), nn.ReLU()]
            n = width
        model = nn.Sequential(*mods, nn.Linear(n, 1)).double()
        direct, t_direct = _best(lambda: regions.as_network(model), repeat)
        traced, t_trace = _best(lambda: trace(model).network, repeat)
        domain = ((-half, half),) * 2
        for net in (direct, traced):       # warm: the first calls of a size run slower
            regions.partition(net, domain, progress=False)
        p, t_p = _best(lambda: regions.partition(direct, domain, progress=False), repeat)
        q, t_q = _best(lambda: regions.partition(traced, domain, progress=False), repeat)
        rows.append({"case": f"{d_in}-{width}x{depth}-1", "read_s": t_direct,
                     "trace_s": t_trace, "regions": len(p), "regions_traced": len(q),
                     "partition_s": t_p, "partition_traced_s": t_q})
        print(rows[-1], flush=True)
    return rows


def sequential_table(rows):
    head = ["network", "read s (as_network)", "trace s (regions.trace)", "regions",
            "regions (traced)", "partition s", "partition s (traced)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([r["case"], f"{r['read_s']:.4f}", f"{r['trace_s']:.4f}",
                                      f"{r['regions']:,}", f"{r['regions_traced']:,}",
                                      f"{r['partition_s']:.3f}",
                                      f"{r['partition_traced_s']:.3f}"]) + " |")
    return "\n".join(out)


def table(rows):
    head = ["network", "domain", "seed", "carried units", "regions (regions)",
            "regions (regioncam)", "difference", "regions: trace s", "regions: partition s",
            "regioncam s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rc = r.get("regioncam")
        diff = "-" if rc is None else ("equal" if rc == r["regions"] else
                                       f"{r['regions'] - rc:+d} ({(r['regions'] - rc) / rc:+.3%})")
        out.append("| " + " | ".join([
            r["case"], r["domain"], str(r["seed"]), f"{r['carried']:,}", f"{r['regions']:,}",
            "-" if rc is None else f"{rc:,}", diff, f"{r['trace_s']:.3f}", f"{r['regions_s']:.3f}",
            "-" if rc is None else f"{r['regioncam_s']:.3f}"]) + " |")
    return "\n".join(out)


def section(rows, max_rows, command, seq_rows=()):
    import numba
    import regioncam  # noqa: F401
    from importlib.metadata import version

    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"""{SECTION}

Written by `{command}` on {when}; {os.cpu_count()} cores, load average {load} at the
end of the run (a machine shared with other sessions); python {platform.python_version()},
numpy {np.__version__}, numba {numba.__version__}, regioncam {version("regioncam")}.

`w-resB`: input -> w, ReLU, then B blocks `h = relu(h + L2 relu(L1 h))`, then w -> 1, He
init (`regions.cli.he_network` per Linear, `default_rng(seed)`), weights rounded to
float32 for both tools. regions reads the torch module by tracing it (the residual
streams are carried units, never cut) and partitions it in float64; regioncam gets
`Sequential(Linear, ReLU, Residual(Sequential(Linear, ReLU, Linear)), ReLU, ...)` and
computes in float32. Times: warm, best of 3 in one process; regions' trace
(`regions.as_network(model)`, torch.fx and the lowering) and partition of the traced
network are timed apart. 1D counts are pieces (regioncam's `num_edges`). The times
are of a loaded machine (see the load average): read them as ratios at most.

{table(rows)}

Count differences are regioncam's float32 arithmetic (as in the table above: slivers near
float32 resolution, lines within float32 rounding of a vertex); `tests/test_carried.py`
checks the same comparison on smaller residual nets when regioncam is installed.

Max over k (`2 -> w`, ReLU, `w -> k`, then the max of the k outputs; regioncam's
`max_pool`). regions reads a max of k > 2 as a balanced tree of pairwise maxes and cuts
only where the argmax changes: the comparisons off the winner's path are set to 0 in the
pattern and the pieces that then agree are merged (docs/design.md, "Reading a model"),
so its regions are regioncam's cells; the middle column joins neighbours with one output
map (to 1e-9) and finds nothing left to join:

{max_table(max_rows)}

A plain `nn.Sequential` of Linear / ReLU keeps its direct reader (`regions.as_network`
reads the chain, no tracing, in about 0.1 ms); the tracer gives the same network (same
counts), whose partition times agree within this machine's noise, about 10% (`[-3, 3]^2`,
PyTorch default init, seed per row; warm, best of 3):

{sequential_table(seq_rows)}
"""


def write_section(path, text):
    """Replace this script's section of ``path`` (or append it), atomically."""
    old = path.read_text() if path.exists() else ""
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if end < 0 else old[end:])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-regioncam", action="store_true")
    ap.add_argument("--write", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    rows = run(args.repeat, not args.no_regioncam)
    print(table(rows))
    if args.no_regioncam:
        return 0
    max_rows = [(case, max_counts(*case)) for case in MAX_CASES]
    print(max_table(max_rows))
    seq_rows = sequential_rows(args.repeat)
    print(sequential_table(seq_rows))
    if args.write:
        command = "python benchmarks/bench_residual.py " + " ".join(argv or sys.argv[1:])
        write_section(HERE / "RESULTS.md", section(rows, max_rows, command.strip(), seq_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
