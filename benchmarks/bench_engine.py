"""Benchmark: regions' exact engine against regioncam on the same networks, same run.

    python benchmarks/bench_engine.py            # the issue's five networks, writes RESULTS.md
    python benchmarks/bench_engine.py --quick    # 2-64x4-1 and 1-256x16-1, prints only
    python benchmarks/bench_engine.py --no-regioncam
    python benchmarks/bench_engine.py --against ../main   # another checkout, case by case

Networks are He-initialised (``W ~ N(0, 2/fan_in)``, ``b ~ N(0, 0.1^2)``, numpy
``default_rng(seed)``, see :func:`regions.cli.he_network`); 2D on [-3, 3]^2, 1D on
[-3, 3]. Every measurement runs in its own fresh subprocess, so that

* peak memory is that process's ``ru_maxrss`` (the interpreter and imports
  included; the RSS after imports is printed beside it),
* "first call" is the first ``regions.partition`` of a fresh process whose Numba
  kernels are already cached on disk (``cache=True``), as a user sees it on the
  second and later runs on a machine,
* "warm" is the best of the following calls in that process,
* "empty cache" is a first call with an empty kernel cache (``NUMBA_CACHE_DIR`` set
  to a new folder): the one-off compile a machine pays once.

regioncam (``pip install regioncam``; the ``bench`` extra) is float32 and single
threaded; regions is float64 and uses both cores where its kernels split the work.
Region counts can differ slightly: float32 rounding merges or splits regions whose
sizes sit near float32's resolution, and a float32 vertex test decides differently
from a float64 one for lines that pass very near a vertex.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (architecture, domain half-width, seed, goal: minimum speed-up over regioncam or None)
CASES = [
    ("2-64x4-1", 3.0, 0, None),
    ("2-128x4-1", 3.0, 0, 10.0),
    ("2-256x4-1", 3.0, 0, 25.0),
    ("1-256x16-1", 3.0, 0, None),
    ("1-1024x16-1", 3.0, 0, 2.0),
]
QUICK = ["2-64x4-1", "1-256x16-1"]
MEMORY_GOAL_MB = {"2-256x4-1": 1024.0}


# ----------------------------------------------------------------------------- workers
def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _build(arch, seed):
    sys.path.insert(0, str(ROOT))
    from regions.cli import he_network, parse_architecture

    sizes = parse_architecture(arch)
    return sizes, he_network(sizes, seed)


def worker_regions(arch, half, seed, repeats):
    import numpy as np

    sizes, pairs = _build(arch, seed)
    import regions
    from regions.network import Network

    # a Network directly: as_network would import torch just to test isinstance
    net = Network([W for W, _ in pairs], [b for _, b in pairs],
                  np.zeros(len(pairs) - 1), None, [])
    domain = (-half, half) if sizes[0] == 1 else ((-half, half), (-half, half))
    partition = regions.partition
    base = _rss_mb()
    t0 = time.perf_counter()
    p = partition(net, domain)
    first = time.perf_counter() - t0
    n = len(p)
    vertices = int(p.vertices.shape[0]) if p.dim == 2 else None
    total = float(p.measure.sum())
    p_stats = dict(p.stats)
    del p
    warm = []
    if first > 15.0:  # a long call: one warm repeat says enough
        repeats = min(repeats, 1)
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = partition(net, domain)
        warm.append(time.perf_counter() - t0)
        del p
    peak = _rss_mb()   # before the floor's own arrays
    floor = _product_floor(p_stats, net, repeats) if p_stats.get("products") else None
    return {"regions": n, "vertices": vertices, "measure_sum": total, "first": first,
            "warm": min(warm) if warm else None, "floor": floor, "rss_base_mb": base,
            "rss_peak_mb": peak}


def _product_floor(stats, net, repeats):
    """Seconds the engine's products of vertex values take alone: for each
    ``[rows, inputs, outputs]`` of ``stats['products']``, the best of ``repeats``
    ``A @ W.T`` with the layer's weights into a preallocated array (the same BLAS
    and threads as the engine's own products), summed over the products. Run
    after the peak memory is read: its arrays are not the engine's."""
    import numpy as np

    total = 0.0
    for i, (rows, k, m) in enumerate(stats["products"]):   # one product's arrays at a time
        A, W, out = np.ones((rows, k)), net.weights[i], np.empty((rows, m))
        np.dot(A, W.T, out=out)   # pages touched before timing
        best = None
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            np.dot(A, W.T, out=out)
            t = time.perf_counter() - t0
            best = t if best is None else min(best, t)
        total += best
        del A, out
    return total


def worker_regioncam(arch, half, seed, repeats):
    import numpy as np

    sizes, pairs = _build(arch, seed)
    import regioncam

    base = _rss_mb()
    times, n = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        rc = regioncam.Regioncam(size=half) if sizes[0] == 2 else regioncam.Regioncam1D((-half, half))
        for i, (W, b) in enumerate(pairs):
            rc.linear(W.T.astype(np.float32), b.astype(np.float32))  # takes W as (in, out)
            if i < len(pairs) - 1:
                rc.relu()
        n = int(rc.num_faces if sizes[0] == 2 else rc.num_edges)
        times.append(time.perf_counter() - t0)
        del rc
    return {"regions": n, "seconds": min(times), "rss_base_mb": base, "rss_peak_mb": _rss_mb()}


def _run_worker(tool, arch, half, seed, repeats, env_extra=None, timeout=1800, script=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    cmd = [sys.executable, str(script or Path(__file__).resolve()), "--worker", tool, arch,
           str(half), str(seed), str(repeats)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = wall
    return out


# ----------------------------------------------------------------------------- report
def _machine():
    model, cores = platform.processor() or "?", os.cpu_count()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 2**20:.0f} GiB"
    except OSError:
        pass
    load = "load average {:.2f} {:.2f} {:.2f} at the end of the run".format(*os.getloadavg())
    return f"{model}, {cores} cores, {mem} RAM, {platform.system()} {platform.release()}; {load}"


def _versions():
    import numba
    import numpy

    v = {"python": platform.python_version(), "numpy": numpy.__version__,
         "numba": numba.__version__}
    try:
        import regioncam  # noqa: F401
        from importlib.metadata import version

        v["regioncam"] = version("regioncam")
    except ImportError:
        v["regioncam"] = "not installed"
    try:
        v["regions"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip() or "?"
    except OSError:
        v["regions"] = "?"
    return v


def _fmt(x, spec="{:.2f}"):
    return "-" if x is None else spec.format(x)


def _row(r):
    ours, rc, other = r["regions"], r.get("regioncam") or {}, r.get("against") or {}
    speedup = (rc["seconds"] / ours["warm"]) if rc.get("seconds") and ours.get("warm") else None
    agree = "-"
    if rc.get("regions") is not None and ours.get("regions") is not None:
        d = ours["regions"] - rc["regions"]
        agree = "equal" if d == 0 else f"{d:+d} ({100.0 * d / rc['regions']:+.3f}%)"
    goal = []
    if r["goal"] is not None and speedup is not None:
        goal.append(f"{'met' if speedup >= r['goal'] else 'MISSED'} (>= {r['goal']:g}x)")
    mem_goal = MEMORY_GOAL_MB.get(r["arch"])
    if mem_goal is not None and ours.get("rss_peak_mb") is not None:
        goal.append(f"mem {'met' if ours['rss_peak_mb'] <= mem_goal else 'MISSED'} "
                    f"(<= {mem_goal / 1024:g} GB)")
    return [r["arch"], _fmt(ours.get("regions"), "{:,}"), _fmt(rc.get("regions"), "{:,}"), agree,
            _fmt(ours.get("warm"), "{:.3f}"), _fmt(ours.get("floor"), "{:.3f}"),
            _fmt(other.get("warm"), "{:.3f}"), _fmt(ours.get("first"), "{:.3f}"),
            _fmt(rc.get("seconds"), "{:.3f}"), _fmt(speedup, "{:.2f}x"),
            _fmt(ours.get("rss_peak_mb"), "{:,.0f}"), _fmt(rc.get("rss_peak_mb"), "{:,.0f}"),
            "; ".join(goal) or "-"]


HEADER = ["network", "regions (regions)", "regions (regioncam)", "count difference",
          "regions warm s", "floor: products alone s", "--against warm s",
          "regions first call s", "regioncam s", "speed-up (warm)",
          "regions peak RSS MB", "regioncam peak RSS MB", "goal"]


def _table(rows):
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(rows, compile_rows, machine, versions, when, command, against=None):
    errors = [f"- {r['arch']} ({tool}): {res['error']}" for r in rows
              for tool, res in (("regions", r["regions"]), ("regioncam", r.get("regioncam") or {}))
              if "error" in res]
    base = [f"{r['arch']}: regions {r['regions'].get('rss_base_mb', 0):.0f} MB, regioncam "
            f"{(r.get('regioncam') or {}).get('rss_base_mb', 0):.0f} MB" for r in rows
            if "error" not in r["regions"]]
    comp = [f"- {k}: {_fmt(v.get('first'), '{:.2f}')} s first call with an empty kernel cache "
            f"(process {_fmt(v.get('process_seconds'), '{:.1f}')} s)" + (f" ERROR {v['error']}" if "error" in v else "")
            for k, v in compile_rows.items()]
    against = against or "not run (`--against DIR` runs another checkout's worker beside this one)"
    return f"""# Engine benchmark: regions vs regioncam

Written by `{command}` on {when}.

- Machine: {machine}
- Versions: {", ".join(f"{k} {v}" for k, v in versions.items())}
- Networks: He init (W ~ N(0, 2/fan_in), b ~ N(0, 0.1^2), `numpy.random.default_rng(0)`,
  `regions.cli.he_network`), 2D on [-3, 3]^2, 1D on [-3, 3]; both tools get the same
  weights in the same run (regioncam as float32).
- Each figure comes from its own fresh subprocess. *warm*: best later call in that
  process; *first call*: the first `regions.partition` of a fresh process with the
  Numba kernels already cached on disk; *peak RSS*: `ru_maxrss` of that process
  (interpreter and imports included); regioncam is single-threaded float32, regions
  float64 on {os.cpu_count()} cores.
- Goals: >= 10x on 2-128x4-1 and >= 25x on 2-256x4-1 (issue 10; issue 2 asked 5x and
  10x), >= 2x on 1-1024x16-1, <= 1 GB peak on 2-256x4-1.
- *floor: products alone*: the products of vertex values with the weight matrices
  that the 2D engine computes (`stats['products']`: rows x inputs x outputs, every
  layer), timed alone on preallocated arrays in the same process, same BLAS and
  threads: what the engine would take if everything else were free.
- *--against warm s*: {against}

{_table(rows)}

Kernel compile, once per machine (empty `NUMBA_CACHE_DIR`):
{chr(10).join(comp) or "- not measured"}

RSS after imports, before enumerating: {"; ".join(base) or "-"}.

Count differences: regioncam computes in float32. Regions whose width is near float32
resolution (about 1e-7 relative to the domain) are merged, dropped or split differently,
and a line passing within float32 rounding of a vertex is decided differently; regions
uses float64 with the tolerance of docs/design.md. A difference of a few hundredths of a
percent at a few hundred thousand regions is that effect; larger ones would be a bug.

The positional-encoding engine (1 -> PE(L=8) -> 128x4 -> 1 against the raw network,
and the grid's undercount) is measured by `python benchmarks/bench_encoded.py --write`,
which records its figures, machine and date in docs/encoded.md ("Measured").
{chr(10).join(["", "Errors:"] + errors) if errors else ""}
"""


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK))
    ap.add_argument("--cases", help="comma-separated architectures to run, e.g. 2-64x4-1")
    ap.add_argument("--no-regioncam", action="store_true", help="skip regioncam")
    ap.add_argument("--write", default=None, metavar="FILE",
                    help="results file (default benchmarks/RESULTS.md for a full run; "
                         "a --quick run writes only when given)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--seed", type=int, default=None, help="override every case's seed")
    ap.add_argument("--against", metavar="DIR", default=None,
                    help="another checkout of regions (e.g. the main branch): its own "
                         "benchmarks/bench_engine.py worker runs beside this one, case by case")
    ap.add_argument("--worker", nargs=5, metavar=("TOOL", "ARCH", "HALF", "SEED", "REPEATS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        tool, arch, half, seed, repeats = args.worker
        fn = worker_regions if tool == "regions" else worker_regioncam
        print(json.dumps(fn(arch, float(half), int(seed), int(repeats))))
        return 0

    cases = CASES
    if args.quick:
        cases = [c for c in CASES if c[0] in QUICK]
    if args.cases:
        wanted = [s.strip() for s in args.cases.split(",")]
        cases = [c for c in CASES if c[0] in wanted] + \
                [(a, 3.0, 0, None) for a in wanted if a not in {c[0] for c in CASES}]
    have_rc = not args.no_regioncam
    if have_rc:
        try:
            import regioncam  # noqa: F401
        except ImportError:
            print("regioncam is not installed (pip install -e '.[bench]'); running regions only")
            have_rc = False

    cache = tempfile.mkdtemp(prefix="regions-numba-cache-")
    env = {"NUMBA_CACHE_DIR": cache}
    print(f"kernel cache for this run: {cache}")
    # the other checkout compiles into its own cache and writes no bytecode into its tree
    other_env = {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="regions-numba-cache-against-"),
                 "PYTHONDONTWRITEBYTECODE": "1"}
    compile_rows = {}
    for kind, arch in (("2D", "2-8x2-1"), ("1D", "1-8x2-1")):
        if any(c[0].startswith(kind[0] + "-") for c in cases):
            res = _run_worker("regions", arch, 3.0, 0, 0, env)
            compile_rows[kind] = res
            print(f"{kind} kernels, empty cache: first call {_fmt(res.get('first'))} s "
                  f"{res.get('error', '')}")

    rows = []
    for arch, half, seed, goal in cases:
        seed = args.seed if args.seed is not None else seed
        print(f"\n{arch} on [-{half:g},{half:g}]^{arch.split('-')[0]} (seed {seed})", flush=True)
        ours = _run_worker("regions", arch, half, seed, 3, env)
        print(f"  regions:   {ours}", flush=True)
        other = None
        if args.against:
            other = _run_worker("regions", arch, half, seed, 3, other_env,
                                script=Path(args.against) / "benchmarks" / "bench_engine.py")
            print(f"  against:   {other}", flush=True)
        rc = None
        if have_rc:
            rc = _run_worker("regioncam", arch, half, seed, 1)
            print(f"  regioncam: {rc}", flush=True)
        rows.append({"arch": arch, "goal": goal, "regions": ours, "regioncam": rc, "against": other})

    print()
    print(_table(rows))
    write = args.write or (None if (args.quick or args.cases or args.no_write)
                           else str(HERE / "RESULTS.md"))
    if write and not args.no_write:
        when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        command = "python benchmarks/bench_engine.py " + " ".join(argv or sys.argv[1:])
        against = None
        if args.against:
            rev = subprocess.run(["git", "-C", args.against, "log", "-1", "--format=%h %s"],
                                 capture_output=True, text=True).stdout.strip()[:90] or "?"
            against = (f"the warm time of the checkout given to `--against` (commit {rev}), "
                       "its worker run right after this one's on each case, with its own "
                       "kernel cache")
        Path(write).write_text(_markdown(rows, compile_rows, _machine(), _versions(), when,
                                         command.strip(), against))
        print(f"\nwrote {write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
