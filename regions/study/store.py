"""Job results stored as data: a :class:`regions.study.results.RunResult` to
JSON + ``.npz`` (+ ``regions.save`` partition files) and back.

:func:`save_run` walks the schema's fields (their ``kind`` metadata): the
arrays go to ``<stem>.npz`` (plain arrays; read with ``allow_pickle=False``),
each exact checkpoint partition to ``<stem>.partition-e<epoch>.npz`` (read by
``regions.load``), the scalars, strings and the nesting to ``<stem>.json``,
with the schema version and the job's configuration key. Every file is
written to a temporary name in the same folder and renamed (atomic); the JSON
goes last, so a job is finished exactly when its JSON exists.

:func:`load_run` reads a job back as an untrusted file: unknown or missing
fields, wrong JSON types, arrays of the wrong dtype, number of axes or size
(sizes named by the schema's shape symbols must agree across fields), NaN
where the schema forbids it, and an inconsistent run (``n`` against the
coordinates, records against losses) all raise ``ValueError`` naming the
field. Nothing is unpickled and nothing a file names is called.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re

import numpy as np

from .results import SCHEMA_VERSION, RunResult, plain_value

__all__ = ["save_run", "load_run", "job_files", "stem_of", "atomic_write_text"]


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` via a temporary file in the same folder."""
    tmp = f"{path}.part"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _jsonable(v, where):
    v = plain_value(v)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x, where) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x, where) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"{where}: {type(v).__name__} is not a schema value")


def _encode(obj, key, arrays_out, partitions_out):
    out = {}
    for f in dataclasses.fields(obj):
        kind, v, k = f.metadata["kind"], getattr(obj, f.name), f"{key}/{f.name}"
        if kind == "array":
            if v is not None:
                arrays_out[k] = np.asarray(v)
            out[f.name] = None if v is None else k
        elif kind == "arrays":
            for name, a in v.items():
                arrays_out[f"{k}/{name}"] = np.asarray(a)
            out[f.name] = list(v)
        elif kind == "record":
            out[f.name] = None if v is None else _encode(v, k, arrays_out, partitions_out)
        elif kind == "records":
            out[f.name] = [_encode(x, f"{k}/{i}", arrays_out, partitions_out)
                           for i, x in enumerate(v)]
        elif kind == "partitions":
            partitions_out.update(v)
            out[f.name] = sorted(int(e) for e in v)
        else:
            out[f.name] = _jsonable(v, k)
    return out


def job_files(job_dir, stem):
    """Paths of a job's files: ``{"json", "npz", "partition": fn(epoch)}``."""
    base = os.path.join(job_dir, stem)
    return {"json": base + ".json", "npz": base + ".npz",
            "partition": lambda e: f"{base}.partition-e{int(e)}.npz"}


def save_run(result, job_dir, stem, key):
    """Store ``result`` as ``stem.npz`` + partitions + ``stem.json`` (last) in
    ``job_dir``, each atomically; ``key`` (the configuration hash) goes into the
    JSON. Returns the JSON path."""
    from ..io import save as save_partition

    files = job_files(job_dir, stem)
    arrays_out, parts = {}, {}
    doc = _encode(result, "run", arrays_out, parts)
    tmp = files["npz"] + ".part.npz"
    np.savez(tmp, **arrays_out)
    os.replace(tmp, files["npz"])
    for e, p in parts.items():
        save_partition(p, files["partition"](e))  # regions.save is atomic itself
    text = json.dumps({"schema": SCHEMA_VERSION, "key": key, "run": doc}, indent=1)
    atomic_write_text(files["json"], text)
    return files["json"]


class _Reader:
    """Decodes a stored run, checking every value against the schema."""

    def __init__(self, z, where):
        self.z, self.where, self.dims = z, where, {}

    def bad(self, what, msg):
        raise ValueError(f"{self.where}: field {what}: {msg}")

    def array(self, f, key, what):
        if key not in self.z.files:
            self.bad(what, f"array {key!r} is missing from the .npz")
        a = self.z[key]
        m = f.metadata
        if a.dtype.kind not in m["dtype"]:
            self.bad(what, f"dtype {a.dtype} (accepted kinds: {m['dtype']!r})")
        shape = m["shape"]
        if a.ndim != len(shape):
            self.bad(what, f"{a.ndim} axes, expected {len(shape)} {shape}")
        for sym, size in zip(shape, a.shape):
            if isinstance(sym, int):
                if size != sym:
                    self.bad(what, f"shape {a.shape}, expected {shape}")
            elif self.dims.setdefault(sym, size) != size:
                self.bad(what, f"shape {a.shape}: axis {sym} is {self.dims[sym]} elsewhere")
        if m["finite"] and a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            self.bad(what, "contains NaN or inf")
        return a

    def scalar(self, f, v, what):
        if v is None:
            if f.metadata["optional"]:
                return None
            self.bad(what, "is missing (null)")
        t = f.metadata["dtype"]
        ok = {"float": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
              "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
              "str": lambda x: isinstance(x, str),
              "shape": lambda x: isinstance(x, list) and 1 <= len(x) <= 2
              and all(isinstance(i, int) and i > 0 for i in x),
              "pair": lambda x: isinstance(x, list) and len(x) == 2
              and all(isinstance(i, (int, float)) and math.isfinite(i) for i in x),
              "strings": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x)}[t]
        if not ok(v):
            self.bad(what, f"{v!r} is not a valid {t}")
        return v

    def decode(self, cls, doc, key):
        if not isinstance(doc, dict):
            self.bad(key, f"expected an object, got {type(doc).__name__}")
        unknown = set(doc) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            self.bad(key, f"unknown fields {sorted(unknown)}")
        kw = {}
        for f in dataclasses.fields(cls):
            kind, what, k = f.metadata["kind"], f"{key}.{f.name}", f"{key}/{f.name}"
            if f.name not in doc:
                self.bad(what, "is missing")
            v = doc[f.name]
            if kind == "array":
                if v is None and f.metadata["optional"]:
                    kw[f.name] = None
                elif v != k:
                    self.bad(what, f"must name the array {k!r}")
                else:
                    kw[f.name] = self.array(f, k, what)
            elif kind == "arrays":
                if not (isinstance(v, list) and all(isinstance(n, str) for n in v)):
                    self.bad(what, "must be a list of array names")
                kw[f.name] = {n: self.array(f, f"{k}/{n}", f"{what}[{n!r}]") for n in v}
            elif kind == "record":
                kw[f.name] = None if v is None else self.decode(f.metadata["cls"], v, k)
            elif kind == "records":
                if not isinstance(v, list):
                    self.bad(what, "must be a list")
                kw[f.name] = [self.decode(f.metadata["cls"], x, f"{k}/{i}")
                              for i, x in enumerate(v)]
            elif kind == "mapping":
                if not isinstance(v, dict):
                    self.bad(what, "must be an object")
                kw[f.name] = {n: self.scalar(f, x, f"{what}[{n!r}]") for n, x in v.items()}
            elif kind == "partitions":
                if not (isinstance(v, list) and all(isinstance(e, int) for e in v)):
                    self.bad(what, "must be a list of epochs")
                kw[f.name] = v  # loaded by load_run
            elif kind == "json":
                kw[f.name] = v
            else:
                kw[f.name] = self.scalar(f, v, what)
        return cls(**kw)


def load_run(job_dir, stem, key=None):
    """Read a run stored by :func:`save_run`, validating it; returns
    ``(RunResult, stored key)``. ``ValueError`` names what is wrong; with
    ``key`` given, a job stored under another key is refused."""
    from ..io import load as load_partition

    files = job_files(job_dir, stem)
    where = files["json"]
    try:
        with open(files["json"]) as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not a valid job file (JSON: {err})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        got = doc.get("schema") if isinstance(doc, dict) else None
        raise ValueError(f"{where}: schema version {got!r}, this code reads {SCHEMA_VERSION}")
    if key is not None and doc.get("key") != key:
        raise ValueError(f"{where}: stored for another configuration (key {doc.get('key')!r}, "
                         f"expected {key!r})")
    try:
        z = np.load(files["npz"], allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{files['npz']}: not a readable .npz of plain arrays ({err})") from None
    with z:
        reader = _Reader(z, where)
        reader.dims["N"] = doc.get("run", {}).get("n") if isinstance(doc.get("run"), dict) \
            else None
        run = reader.decode(RunResult, doc.get("run"), "run")
    if run.n != run.coords.shape[0] or len(run.record_epochs) != len(run.mean_loss):
        raise ValueError(f"{where}: n, coords, record_epochs and mean_loss disagree")
    if run.dim != run.coords.shape[1] or list(run.grid_shape or []) and \
            int(np.prod(run.grid_shape)) != run.n:
        raise ValueError(f"{where}: dim or grid_shape disagree with the coordinates")
    epochs = [c.epoch for c in run.checkpoints]
    if epochs != sorted(set(epochs)):
        raise ValueError(f"{where}: checkpoint epochs {epochs} are not increasing")
    run.partitions = {}
    for e in doc["run"]["partitions"]:
        if e not in epochs:
            raise ValueError(f"{where}: a partition for epoch {e}, which is not analysed")
        run.partitions[e] = load_partition(files["partition"](e))
    return run, doc.get("key")


def stem_of(name, seed):
    """File stem of a job: the experiment name (letters, digits, ``._-``) and seed."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", str(name)):
        raise ValueError(f"experiment name {name!r}: use letters, digits and ._- only (it "
                         "names the job files)")
    return f"{name}_s{int(seed)}"
