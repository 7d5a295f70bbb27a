"""Input encodings (sin/cos features of the coordinate) as torch modules.

Every encoding is described by one general table, :meth:`Encoding.feature_spec`:
feature ``i`` is ``kind[i]`` applied to ``omega[i] . p`` with kind 0 = the raw
projection ``omega . p``, 1 = ``sin(omega . p)``, 2 = ``cos(omega . p)``.
The exact engines (:mod:`regions.encoded`) read only that table.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["Encoding", "PositionalEncoding", "RandomFourierFeatures"]

RAW, SIN, COS = 0, 1, 2


class Encoding(torch.nn.Module):
    """Base class: subclasses set ``in_features`` and register buffers
    ``kinds`` (int64, (F,)) and ``omegas`` (float64, (F, in_features))."""

    in_features: int

    @property
    def out_features(self) -> int:
        return int(self.kinds.shape[0])

    def _apply(self, fn, *args, **kwargs):
        # keep the feature table in float64 through .float() / .half() / .to(dtype):
        # 2^l pi in float32 would move every breakpoint; devices still follow fn
        saved = {name: buf for name, buf in self._buffers.items()
                 if buf is not None and buf.dtype == torch.float64}
        out = super()._apply(fn, *args, **kwargs)
        for name, buf in saved.items():
            now = self._buffers[name]
            if now is not None and now.dtype != torch.float64:
                self._buffers[name] = buf.to(device=now.device)
        return out

    @classmethod
    def from_spec(cls, kinds, omegas):
        """A plain :class:`Encoding` with exactly this feature table.

        ``kinds`` ``(F,)`` (0 raw, 1 sin, 2 cos) and ``omegas`` ``(F, d)``, kept in
        float64; what :func:`regions.load` and a ``state_dict`` of an encoded model
        rebuild the encoding from (the features, not the subclass, are what count).
        """
        kinds = np.asarray(kinds)
        omegas = np.asarray(omegas, dtype=np.float64)
        if omegas.ndim == 1:
            omegas = omegas[:, None]
        if kinds.ndim != 1 or omegas.ndim != 2 or omegas.shape[0] != kinds.shape[0] \
                or kinds.shape[0] == 0 or omegas.shape[1] == 0:
            raise ValueError(f"an encoding's feature table needs kinds shaped (F,) and omegas "
                             f"shaped (F, d) with F, d >= 1; got {kinds.shape} and {omegas.shape}")
        if not np.all(np.isin(kinds, (RAW, SIN, COS))):
            raise ValueError(f"encoding kinds must be 0 (raw), 1 (sin) or 2 (cos), got "
                             f"{sorted(set(np.asarray(kinds).ravel().tolist()))}")
        if not np.all(np.isfinite(omegas)):
            raise ValueError("the encoding's frequencies (omegas) must be finite")
        enc = Encoding()
        enc.in_features = int(omegas.shape[1])
        enc.register_buffer("kinds", torch.as_tensor(kinds.astype(np.int64)))
        enc.register_buffer("omegas", torch.as_tensor(omegas.copy()))
        return enc

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def feature_spec(self):
        """``(kinds, omegas)`` as numpy arrays: int64 ``(F,)`` and float64 ``(F, d)``."""
        return (self.kinds.detach().cpu().numpy().astype(np.int64),
                self.omegas.detach().cpu().double().numpy())

    def forward(self, p):
        phase = p.to(self.omegas.dtype) @ self.omegas.T
        out = torch.where(self.kinds == SIN, torch.sin(phase),
                          torch.where(self.kinds == COS, torch.cos(phase), phase))
        return out.to(p.dtype)

    def encode_numpy(self, p):
        """The same features in float64 numpy, for exact work."""
        kinds, omegas = self.feature_spec()
        phase = np.atleast_2d(np.asarray(p, dtype=np.float64)) @ omegas.T
        return np.where(kinds == SIN, np.sin(phase), np.where(kinds == COS, np.cos(phase), phase))


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class PositionalEncoding(Encoding):
    """The paper's positional encoding of a 1D or 2D coordinate.

    For ``l = 0 .. L-1`` the features ``sin(base**l * scale * p_d)`` and
    ``cos(base**l * scale * p_d)`` for each coordinate ``d``, in the order
    ``[sin x, cos x, sin y, cos y]`` per ``l`` (``4 L`` features in 2D,
    ``2 L`` in 1D). With ``include_input=True`` the raw coordinates come
    first. The defaults ``base=2``, ``scale=pi`` give ``sin(2^l pi p)``.

    Examples
    --------
    >>> pe = PositionalEncoding(2)
    >>> pe.out_features
    4
    >>> pe(torch.tensor([[0.5]], dtype=torch.float64)).numpy().round(12).tolist()
    [[1.0, 0.0, 0.0, -1.0]]
    """

    def __init__(self, L, in_features=1, include_input=False, base=2.0, scale=float(np.pi)):
        super().__init__()
        L = _check_int(L, "L (the number of frequencies)", 1)
        if in_features not in (1, 2):
            raise ValueError(f"in_features must be 1 or 2 (a 1D or 2D coordinate), got {in_features!r}")
        base, scale = float(base), float(scale)
        if not (np.isfinite(base) and base > 0 and np.isfinite(scale) and scale != 0):
            raise ValueError(f"base must be a positive number and scale a nonzero number, "
                             f"got base={base}, scale={scale}")
        self.in_features = int(in_features)
        self.L, self.base, self.scale, self.include_input = L, base, scale, bool(include_input)
        kinds, omegas = [], []
        eye = np.eye(self.in_features)
        if include_input:
            for d in range(self.in_features):
                kinds.append(RAW), omegas.append(eye[d])
        for l in range(L):
            w = base ** l * scale
            for d in range(self.in_features):
                kinds.append(SIN), omegas.append(w * eye[d])
                kinds.append(COS), omegas.append(w * eye[d])
        self.register_buffer("kinds", torch.tensor(kinds, dtype=torch.int64))
        self.register_buffer("omegas", torch.tensor(np.array(omegas), dtype=torch.float64))

    def extra_repr(self):
        return (f"L={self.L}, in_features={self.in_features}, include_input={self.include_input}, "
                f"base={self.base}, scale={self.scale}")


class RandomFourierFeatures(Encoding):
    """Random Fourier features ``sin(2 pi B p)``, ``cos(2 pi B p)``.

    ``B`` ``(n_frequencies, in_features)`` has entries ``N(0, sigma^2)`` drawn
    from ``torch.Generator().manual_seed(seed)`` in float64, so the same seed
    gives the same matrix on any machine. ``B`` is a buffer: it is saved in
    ``state_dict`` and restored by ``load_state_dict`` (a module built with
    another seed takes the loaded matrix). Features per frequency ``i``:
    ``sin(2 pi b_i . p), cos(2 pi b_i . p)``; with ``include_input=True`` the
    raw coordinates come first.

    Examples
    --------
    >>> rff = RandomFourierFeatures(2, 8, sigma=3.0, seed=0)
    >>> rff.out_features, tuple(rff.B.shape)
    (16, (8, 2))
    >>> bool(torch.equal(rff.B, RandomFourierFeatures(2, 8, 3.0, seed=0).B))
    True
    """

    def __init__(self, in_features, n_frequencies, sigma, seed=0, include_input=False):
        super().__init__()
        in_features = _check_int(in_features, "in_features", 1)
        n_frequencies = _check_int(n_frequencies, "n_frequencies", 1)
        sigma = float(sigma)
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma}")
        seed = _check_int(seed, "seed", 0)
        self.in_features = in_features
        self.n_frequencies, self.sigma, self.seed = n_frequencies, sigma, seed
        self.include_input = bool(include_input)
        gen = torch.Generator().manual_seed(seed)
        B = torch.randn(n_frequencies, in_features, generator=gen, dtype=torch.float64) * sigma
        self.register_buffer("B", B)
        k = [RAW] * in_features if include_input else []
        k += [SIN, COS] * n_frequencies
        self.register_buffer("kinds", torch.tensor(k, dtype=torch.int64))
        self.register_buffer("omegas", self._omegas(B))
        self._register_load_state_dict_pre_hook(self._sync_omegas, with_module=False)

    def _omegas(self, B):
        rows = [torch.eye(self.in_features, dtype=torch.float64)] if self.include_input else []
        rows.append(torch.repeat_interleave(2 * np.pi * B.to(torch.float64), 2, dim=0))
        return torch.cat(rows, dim=0)

    def _sync_omegas(self, state_dict, prefix, *args):
        # a state_dict that carries only B (or an edited B) defines the features
        key = prefix + "B"
        if key in state_dict:
            B = state_dict[key]
            if tuple(B.shape) != (self.n_frequencies, self.in_features):
                raise ValueError(f"the saved frequency matrix {key} has shape {tuple(B.shape)}; "
                                 f"this module expects ({self.n_frequencies}, {self.in_features})")
            state_dict[prefix + "omegas"] = self._omegas(B)

    def extra_repr(self):
        return (f"in_features={self.in_features}, n_frequencies={self.n_frequencies}, "
                f"sigma={self.sigma}, seed={self.seed}, include_input={self.include_input}")
