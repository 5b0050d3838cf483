"""Robust Levenberg-Marquardt for bundle adjustment, with the point parameters eliminated by the
Schur complement.

It minimises ``0.5 * sum(rho(r_i(p)))`` over ``p = (camera, local)``, with the soft L1 loss
``rho(s) = 2 C^2 (sqrt(1 + s^2 / C^2) - 1)`` applied to every residual, and box bounds on ``p``.
``camera`` (focal length and poses: a few hundred numbers at most) may touch every residual;
each residual depends on at most one ``local`` parameter (a track's inverse depth), so the normal
equations' local block is diagonal: the step comes from the small dense Schur complement on the
camera parameters (Cholesky) and each local parameter's by back-substitution.

The robust loss enters by IRLS weights rho'(r^2) (each residual's quadratic majoriser), not by
scipy's Triggs correction: from a far start that correction's second-order model leaves the far
residuals almost no curvature and proposes steps far too long; on the pose estimator's problems
IRLS reached lower costs within the same evaluation budgets. The damping is Marquardt's (the
running maximum of the normal equations' diagonal, which makes the step independent of the
parameters' units, as least_squares' ``x_scale="jac"``) with Nielsen's update, and a parameter at
a bound whose gradient pushes it out is held for that step (lower == upper holds it throughout).
The stopping rules and ``max_nfev`` (residual evaluations, rejected steps included) are
least_squares'. J^T J is formed sparse, then dense (a few hundred parameters here).

Ceres (through pyceres) has such a Schur solver, but there a cost function written in Python is
called from C++ once per residual block and evaluation (hundreds of tracks times hundreds of
evaluations per GoP), where this solver evaluates all residuals in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.sparse import csr_matrix


@dataclass(frozen=True)
class LMConfig:
    loss_scale: float = 1.0  # soft L1 threshold C, in residual units
    ftol: float = 1e-8  # stop when the cost falls by less than this fraction in a good step
    xtol: float = 1e-8  # ... or the step is this small relative to the parameters
    gtol: float = 1e-8  # ... or the scaled gradient is this small
    initial_damping: float = 1e-3  # relative to the normal equations' diagonal
    min_diagonal: float = 1e-12  # floor of the damping diagonal (empty columns: held parameters)


def _soft_l1(r: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
    """Cost and IRLS weights rho'(r^2) of the residuals."""
    t = 1 + (r / scale) ** 2
    return float(scale**2 * np.sum(np.sqrt(t) - 1)), t**-0.5  # 0.5 * sum(rho)


def least_squares_lm(
    fun: Callable[[np.ndarray], np.ndarray],
    jac: Callable[[np.ndarray], csr_matrix],
    p0: np.ndarray,
    num_local: int,
    lower: np.ndarray,
    upper: np.ndarray,
    max_nfev: int,
    config: LMConfig = LMConfig(),
) -> np.ndarray:
    """Minimise the robust cost of ``fun`` from ``p0`` (clipped into the bounds); the last
    ``num_local`` parameters are the local ones (at most one per row of ``jac``)."""
    p = np.clip(np.asarray(p0, dtype=np.float64), lower, upper)
    num_camera = len(p) - num_local
    r = fun(p)
    nfev = 1
    cost, weight = _soft_l1(r, config.loss_scale)
    diagonal = np.full(len(p), config.min_diagonal)
    damping = config.initial_damping
    while nfev < max_nfev:
        j = jac(p)
        g = j.T @ (weight * r)
        held = (upper - lower <= 0) | ((p <= lower) & (g > 0)) | ((p >= upper) & (g < 0))
        g[held] = 0.0
        # Rows scaled by the square roots of the weights, held columns emptied (their step is 0).
        jw = j.copy()
        jw.data *= np.repeat(np.sqrt(weight), np.diff(jw.indptr)) * ~held[jw.indices]
        normal = (jw.T @ jw).toarray()
        diagonal = np.maximum(diagonal, np.diag(normal))
        if np.max(np.abs(g) / np.sqrt(diagonal)) < config.gtol:
            return p
        growth = 2.0  # of the damping after each rejected step (Nielsen)
        while nfev < max_nfev:
            step = _damped_step(normal, g, damping * diagonal, num_camera)
            if step is None:  # not positive definite in floating point: damp more
                if damping > 1e30:
                    return p
                damping *= growth
                growth *= 2
                continue
            p_new = np.clip(p + step, lower, upper)
            step = p_new - p
            predicted = -(g @ step + 0.5 * np.sum((jw @ step) ** 2))
            r_new = fun(p_new)
            nfev += 1
            cost_new, weight_new = _soft_l1(r_new, config.loss_scale)
            small_step = np.linalg.norm(step) < config.xtol * (config.xtol + np.linalg.norm(p))
            ratio = (cost - cost_new) / predicted if predicted > 0 else -1.0
            if ratio > 1e-4:
                # Nielsen: less damping the better the model predicted the reduction.
                damping *= max(1 / 3, 1 - (2 * ratio - 1) ** 3)
                converged = small_step or (cost - cost_new < config.ftol * cost and ratio > 0.25)
                p, r, cost, weight = p_new, r_new, cost_new, weight_new
                if converged:
                    return p
                break
            if small_step:
                return p
            damping *= growth
            growth *= 2
    return p


def _damped_step(normal: np.ndarray, g: np.ndarray, damping: np.ndarray, num_camera: int) -> np.ndarray | None:
    """Solution of (J^T J + diag(damping)) step = -g, J^T J given dense, by the Schur complement
    on the camera parameters (its local-local block is diagonal); None when the Cholesky
    factorisation fails."""
    u = normal[:num_camera, :num_camera] + np.diag(damping[:num_camera])
    w = normal[:num_camera, num_camera:]
    v = np.diag(normal)[num_camera:] + damping[num_camera:]
    g_camera, g_local = g[:num_camera], g[num_camera:]
    try:
        factor = cho_factor(u - (w / v) @ w.T)
    except LinAlgError:
        return None
    step_camera = cho_solve(factor, -g_camera + w @ (g_local / v))
    step_local = -(g_local + w.T @ step_camera) / v
    return np.concatenate([step_camera, step_local])
