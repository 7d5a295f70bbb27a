"""The neural tangent kernel of the study's MLPs, exactly: per pair, over the
samples, split against the residual; its spectrum and the gradient-descent
convergence it predicts; and the first-order prediction of one Adam step with
the optimiser's own (preconditioned) update.

Notation (as in :mod:`regions.study.gram`): ``f_i = f(x_i)`` in ``R^C``, the
residual ``r_i = f_i - y_i``, ``J_i = df_i / dtheta`` the ``(C, P)`` Jacobian
over the Linear layers' parameters, the per-sample loss
``loss_i = |r_i|^2 / C`` (training minimises the mean over samples and
channels) and its gradient ``g_i = (2 / C) J_i^T r_i``. Then

* ``K_ij = J_i J_j^T`` is the ``(C, C)`` NTK block of a pair and
  ``G_ij = g_i . g_j = (4 / C^2) r_i^T K_ij r_j``;
* the kernel similarity ``s_ij = tr K_ij / sqrt(tr K_ii tr K_jj)`` and the
  residual cosine ``cos(r_i, r_j)`` split the gradient cosine: when
  ``K_ij`` is close to ``(tr K_ij / C) I``, ``cos(g_i, g_j) ~ s_ij cos(r_i, r_j)``;
* ``Theta_ij = tr K_ij`` is the trace NTK over the samples (``N x N``).

Everything is computed from the factors of the float64 forward pass
(:func:`regions.study.factors.forward_factors`): with ``delta^c_{l,i} = d f_{i,c} / d z_l``,
``K_ij[c, c'] = sum_l (delta^c_{l,i} . delta^{c'}_{l,j}) (a_{l-1,i} . a_{l-1,j} + 1)``;
nothing materialises a Jacobian. The first-order prediction of an Adam step
uses :func:`torch.func.jvp` through :func:`torch.func.functional_call`.

Gradient descent on the linearised model: full-batch GD with step ``eta`` on
``L = (1 / (N C)) sum_i |r_i|^2`` changes the residuals by
``r <- r - (2 eta / (N C)) K r`` (``K`` the ``NC x NC`` NTK). With one
channel ``K = Theta``, so the component of the residual along the
eigenvector ``u_k`` of ``Theta`` (eigenvalue ``lambda_k``) is multiplied by
``(1 - 2 eta lambda_k / N)`` per step; with ``C`` channels and
``K_ij = (Theta_ij / C) I_C`` (exact for a linear model, an approximation for
an MLP whose size :func:`kernel_split` reports as ``anisotropy``) the factor is
``(1 - 2 eta lambda_k / (N C^2))`` (:func:`gd_step_scale`). The
eigendecomposition is ``O(N^3)`` (:func:`eigen`): 1024 samples take about
0.3 s on one thread, 2048 about 2.5 s, 4096 about 20 s; grids above the
study's limit are analysed on a strided subgrid (:func:`subgrid`).

The package: :mod:`.kernel` (factors, blocks, trace NTK, the kernel/residual
split), :mod:`.spectrum` (eigendecomposition, bands, the GD prediction) and
:mod:`.adam` (the Adam step's prediction by pair class).
"""
from .adam import PAIR_CLASSES, adam_step_split
from .kernel import (JacobianFactors, jacobian_factors, kernel_blocks, kernel_split,
                     kernel_traces, residual_cosines, trace_ntk)
from .spectrum import (ROUNDING_FLOOR, band_gains, eigen, eigenvector_frequencies, gd_band_check,
                       gd_spectral_prediction, gd_step_scale, spectrum_summary, subgrid)

__all__ = ["JacobianFactors", "jacobian_factors", "kernel_blocks", "kernel_traces",
           "trace_ntk", "residual_cosines", "kernel_split", "subgrid", "eigen",
           "eigenvector_frequencies", "band_gains", "spectrum_summary", "gd_step_scale",
           "gd_spectral_prediction", "gd_band_check", "adam_step_split", "PAIR_CLASSES",
           "ROUNDING_FLOOR"]
