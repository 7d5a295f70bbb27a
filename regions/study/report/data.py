"""The report's data files: ``summary.csv`` (one row per run, seed and checkpoint,
over the schema's csv fields), ``coupling.csv``, ``findings.csv`` and ``runs.npz``."""
from __future__ import annotations

import csv
import dataclasses
import os
from collections import OrderedDict

import numpy as np

from ..results import Checkpoint, Finding, RunResult, csv_columns, csv_row


KEY_FEATURES = ("occupancy", "measure", "inradius", "density", "dist_boundary", "hamming",
                "crossings")


# ----------------------------------------------------------------------------- tables
def scalar_columns():
    """The plain (scalar) ``csv`` columns of :class:`RunResult` and :class:`Checkpoint`."""
    return [f.metadata["csv"] for cls in (RunResult, Checkpoint) for f in dataclasses.fields(cls)
            if f.metadata.get("csv") and f.metadata["kind"] == "scalar"]


def summary_rows(results):
    """One row (dict) per run, seed and analysed checkpoint: the fields of
    :class:`RunResult` and :class:`Checkpoint` that the schema marks ``csv``.
    Every plain column is in every row (empty where not measured), so that the
    columns of ``summary.csv`` do not depend on what happened to be measured:
    ``compile_seconds``, for one, is empty in every row of a study whose worker
    processes had already compiled the engine."""
    scalars = scalar_columns()
    rows = []
    for r in results:
        for c in r.checkpoints:
            row = csv_row(r, c)
            rows.append({**row, **{k: None for k in scalars if k not in row}})
    return rows


def record_rows(records, cls):
    names = csv_columns(cls)
    return [{k: getattr(x, k) for k in names} for x in records]


def write_csv(path, rows):
    keys = list(OrderedDict.fromkeys(k for row in rows for k in row))
    tmp = f"{path}.part"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({k: "" if row.get(k) is None else row[k] for k in keys})
    os.replace(tmp, path)


def write_findings(found, path):
    """Write ``findings.csv``: one row per :class:`regions.study.results.Finding`,
    a column per field of the schema (atomically)."""
    write_csv(path, record_rows(found, Finding))


def save_npz(path, results):
    arrays = {}
    for r in results:
        p = f"{r.name}_s{r.seed}"
        arrays[f"{p}/record_epochs"] = np.asarray(r.record_epochs)
        arrays[f"{p}/mean_loss"] = np.asarray(r.mean_loss)
        for k, v in r.speeds.items():
            arrays[f"{p}/speed/{k}"] = np.asarray(v)
        if r.band_energy is not None:
            arrays[f"{p}/band_energy/epochs"] = r.band_energy.epochs
            arrays[f"{p}/band_energy/ratio"] = r.band_energy.ratio
            arrays[f"{p}/band_energy/bands"] = r.band_energy.bands
        for c in r.checkpoints:
            q = f"{p}/epoch{c.epoch}"
            for k, v in c.features.items():
                arrays[f"{q}/feature/{k}"] = np.asarray(v)
            for k, v in c.speeds.items():
                arrays[f"{q}/speed/{k}"] = np.asarray(v)
            if c.observed_change is not None:
                arrays[f"{q}/observed_change"] = c.observed_change
                for k, v in c.predicted.items():
                    arrays[f"{q}/predicted/{k}"] = v
            if c.confusion is not None:
                arrays[f"{q}/confusion/neighbour"] = c.confusion.neighbour
                arrays[f"{q}/confusion/distant"] = c.confusion.distant
    tmp = f"{path}.part.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
