"""Independent references for loss max-pooling, written from the problem statement (Eqs. 4-5).

None of this follows Algorithm 1. For p > 1 the maximiser of ``w . l`` over
``{||w||_p <= gamma, 0 <= w <= tau}`` satisfies the KKT conditions of the primal, which give
``w(u) = min(tau, c * l(u)^(q-1))`` for a scalar ``c >= 0`` at which the p-norm constraint is
tight (or ``w = tau`` everywhere when even that satisfies it); ``c`` is found by bisection. For
p = 1 the problem is a linear programme, solved by scipy's ``linprog``. A generic solver
(SLSQP) cross-checks the bisection on small problems.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize


def feasible_set(n: int, p: float, m: float) -> tuple[float, float]:
    """(gamma, tau) of Eq. (5) for n pixels."""
    if p == 1:
        return 1.0, 1.0 / m
    q = p / (p - 1)
    gamma = n ** (-1.0 / q)
    return gamma, gamma / m ** (1.0 / p)


def reference_weights(losses: np.ndarray, p: float, m: float) -> tuple[np.ndarray, float]:
    """Optimal w and the maximum of Eq. (4) for one row of non-negative losses."""
    losses = np.asarray(losses, dtype=np.float64)
    n = losses.size
    gamma, tau = feasible_set(n, p, m)
    if p == 1:
        res = linprog(
            -losses, A_ub=np.ones((1, n)), b_ub=[gamma], bounds=[(0, tau)] * n, method="highs"
        )
        assert res.success
        return res.x, float(-res.fun)
    scale = losses.max()
    if scale == 0:
        return np.zeros(n), 0.0
    x = losses / scale
    if n * tau**p <= gamma**p * (1 + 1e-15):
        w = np.full(n, tau)
        return w, float(w @ losses)
    # Work with log c to span many orders of magnitude; c * x^(q-1) with x in [0, 1].
    q = p / (p - 1)
    pos = x > 0

    def pnorm_p(log_c: float) -> float:
        w = np.zeros(n)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            w[pos] = np.minimum(tau, np.exp(log_c + (q - 1) * np.log(x[pos])))
        return float(np.sum(w**p))

    # w -> 0, and w -> tau on every positive loss (the smallest one needs c = x^-(q-1): for
    # q near 1000 that is far beyond e^800).
    lo, hi = -800.0, 800.0 - (q - 1) * float(np.log(x[pos]).min())
    if pnorm_p(hi) <= gamma**p:  # few positive losses: all of them at tau
        w = np.where(pos, tau, 0.0)
        return w, float(w @ losses)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if pnorm_p(mid) > gamma**p:
            hi = mid
        else:
            lo = mid
    w = np.zeros(n)
    with np.errstate(under="ignore", divide="ignore"):
        w[pos] = np.minimum(tau, np.exp(lo + (q - 1) * np.log(x[pos])))
    return w, float(w @ losses)


def generic_solver_value(losses: np.ndarray, p: float, m: float) -> float:
    """The maximum of Eq. (4) by a general-purpose constrained optimiser (small n only)."""
    losses = np.asarray(losses, dtype=np.float64)
    n = losses.size
    gamma, tau = feasible_set(n, p, m)
    best = -np.inf
    for start in (np.full(n, min(tau, gamma / n ** (1 / p))), np.zeros(n)):
        res = minimize(
            lambda w: -(w @ losses),
            start,
            jac=lambda w: -losses,
            bounds=[(0, tau)] * n,
            constraints=[{"type": "ineq", "fun": lambda w: gamma**p - np.sum(np.abs(w) ** p)}],
            method="SLSQP",
            options={"ftol": 1e-14, "maxiter": 1000},
        )
        best = max(best, -res.fun)
    return float(best)
