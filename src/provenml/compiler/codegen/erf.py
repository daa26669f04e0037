"""The error function the generated kernels use: a rational approximation that vectorizes.

GELU is ``0.5 x (1 + erf(x / sqrt 2))``. glibc's vector ``erff`` (libmvec) costs about 25
cycles per 16 floats here, which made the erf 17% of the transformer block's first FFN GEMM
(35 of 205 us of work at two threads, docs/compiler_history.md, *Stop 37*). A ratio of two degree-5
polynomials in ``x^2`` costs 11 fused multiply-adds and one division per vector:

    erf(x) ~= x P(x^2) / Q(x^2),  |x| <= BOUND;   erf(x) = sign(x) beyond,

with ``BOUND`` where float32 erf rounds to 1. The coefficients come from
:func:`fit_erf_rational` (weighted least squares on Chebyshev nodes, linearised by Loeb's
iteration: minimise ``w (f Q - P)`` with ``w = 1 / |Q|`` from the previous round), stored
rounded to 11 digits; a test refits them and checks the maximum error. Measured in float32
over [-7, 7]: |error| <= 4.6e-7 (libm's ``erff``: 3e-8), so a GELU output moves by at most
8e-7, far inside the 1e-4 the compiled models are checked to.
"""

from __future__ import annotations

import numpy as np

BOUND = 3.92  # float32(erf(3.92)) == 1
ERF_NUM = (
    1.1283791611,
    0.18870877929,
    0.052530122738,
    0.0036950068504,
    0.00028367952702,
    2.0678013318e-06,
)
ERF_DEN = (
    1.0,
    0.50057180644,
    0.11341289367,
    0.014826774135,
    0.00114617649,
    3.8213172836e-05,
)


def fit_erf_rational(
    bound: float = BOUND, num: int = 5, den: int = 5, nodes: int = 6000, rounds: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (lowest degree first) of ``P`` and ``Q`` (``Q(0) = 1``) with
    ``erf(x) ~= x P(x^2) / Q(x^2)`` on ``[0, bound]``, weighted for relative error in erf."""
    from scipy.special import erf

    x = (np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes) * 0.5 + 0.5) * bound
    u = x * x
    target = erf(x) / x  # x > 0 at every Chebyshev node
    weight = x / erf(x)
    q_at = np.ones_like(u)
    powers_p = np.vander(u, num + 1, increasing=True)
    powers_q = np.vander(u, den + 1, increasing=True)[:, 1:]
    p = q = np.zeros(0)
    for _ in range(rounds):
        system = np.hstack([powers_p, -target[:, None] * powers_q])
        w = weight / np.abs(q_at)
        sol, *_ = np.linalg.lstsq(system * w[:, None], target * w, rcond=None)
        p, q = sol[: num + 1], np.concatenate([[1.0], sol[num + 1 :]])
        q_at = powers_q @ q[1:] + 1.0
    return p, q


def _horner(coefs: tuple[float, ...], var: str) -> str:
    text = f"{coefs[-1]:.10e}f"
    for c in coefs[-2::-1]:
        text = f"({text} * {var} + {c:.10e}f)"
    return text


def erf_float32(x: np.ndarray) -> np.ndarray:
    """The approximation evaluated in float32 exactly as the C below does (for tests)."""
    x = np.asarray(x, np.float32)
    xc = np.clip(x, -BOUND, BOUND).astype(np.float32)
    u = xc * xc
    p = np.float32(ERF_NUM[-1])
    for c in ERF_NUM[-2::-1]:
        p = (p * u + np.float32(c)).astype(np.float32)
    q = np.float32(ERF_DEN[-1])
    for c in ERF_DEN[-2::-1]:
        q = (q * u + np.float32(c)).astype(np.float32)
    ratio = (xc * p / q).astype(np.float32)
    return np.where(x < -BOUND, np.float32(-1.0), np.where(x > BOUND, np.float32(1.0), ratio))


ERF_C = f"""static inline float pm_erf(float x) {{  /* x P(x^2) / Q(x^2), codegen/erf.py */
  const float xc = x < -{BOUND}f ? -{BOUND}f : (x > {BOUND}f ? {BOUND}f : x);
  const float u = xc * xc;
  const float ratio = xc * {_horner(ERF_NUM, "u")}
            / {_horner(ERF_DEN, "u")};
  /* +-1 exactly beyond the bound (stop 68), where the ratio is 1 - 6e-8: GELU's
     x (1 + erf(x / sqrt 2)) is then 0 for a large negative x (-1e38 gave -9e30) and NaN at
     -inf as in PyTorch; a NaN x fails both tests and stays NaN through the ratio */
  return x < -{BOUND}f ? -1.f : (x > {BOUND}f ? 1.f : ratio);
}}
"""
