"""Error EDFs of design-space populations, their complexity normalisation, and bootstraps.

The statistics of Radosavovic et al. ("On Network Design Spaces", 2019; "Designing Network
Design Spaces", 2020), as pure functions of arrays:

- :func:`edf`: the (weighted) empirical distribution function of errors,
  ``F(e) = sum_i w_i [e_i <= e]`` with ``sum_i w_i = 1``.
- :func:`complexity_weights`: per-model weights that make a population's complexity
  (GFLOPs) distribution match a reference's: the log-complexity axis is cut into bins, and a
  model in bin ``b`` weighs ``p_b / n_b`` (the reference's mass in the bin over the
  population's count in it). Reference mass in bins the population never reaches is dropped
  and the rest renormalised; ``coverage`` says how much was kept.
- :func:`ks_statistic`: ``sup_e |F_a(e) - F_b(e)|``, weighted.
- :func:`edf_area`: the area under an EDF over an error range, divided by its width (1: every
  model at the range's low end; larger is better).
- :func:`bootstrap_compare`: the KS statistic and the area difference between two
  populations, with percentile intervals from resampling both with replacement (weights
  recomputed on every resample).
- :func:`good_range`: pycls's bootstrapped "good range" of a knob: the value of the best of a
  25% subsample (with replacement), over 2,500 subsamples; the 2.5 / 50 / 97.5 percentiles.

Written here rather than taken from scipy: ``scipy.stats.ks_2samp`` and ``ecdf`` take no
weights, and the normalised EDF is a weighted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "GoodRange", "bootstrap_compare", "complexity_bins",
           "complexity_weights", "edf", "edf_area", "edf_at", "good_levels", "good_range",
           "ks_statistic"]

BOOTSTRAPS = 2500  # pycls's sweep analysis (get_filters: b=2500)
SUBSAMPLE = 0.25  # pycls: the best of 25% subsamples


def _weights(n: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights: need {n} finite non-negative values with a positive sum")
    return w / w.sum()


def edf(errors: Sequence[float], weights: Sequence[float] | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """The EDF as steps: sorted errors ``x`` and ``F(x)`` just after each (ties merged)."""
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        raise ValueError("errors: an EDF needs at least one value")
    w = _weights(e.size, weights)
    order = np.argsort(e, kind="stable")
    x, cum = e[order], np.cumsum(w[order])
    last = np.r_[x[1:] != x[:-1], True]  # the last of each run of ties carries F
    return x[last], np.minimum(cum[last], 1.0)


def edf_at(errors: Sequence[float], at: Sequence[float],
           weights: Sequence[float] | None = None) -> np.ndarray:
    """``F(at)``: the weighted fraction of errors ``<= at``."""
    e = np.asarray(errors, dtype=float)
    w = _weights(e.size, weights)
    order = np.argsort(e, kind="stable")
    cum = np.r_[0.0, np.cumsum(w[order])]
    return np.minimum(cum[np.searchsorted(e[order], np.asarray(at, dtype=float),
                                          side="right")], 1.0)


def complexity_bins(complexities: Sequence[float], bins: int) -> np.ndarray:
    """``bins + 1`` edges, equal in log-complexity, spanning every value given."""
    c = np.asarray(complexities, dtype=float)
    if bins < 1:
        raise ValueError(f"bins: must be >= 1, got {bins}")
    if c.size == 0 or (c <= 0).any() or not np.isfinite(c).all():
        raise ValueError("complexity: needs positive finite values (GFLOPs or params)")
    lo, hi = np.log(c.min()), np.log(c.max())
    if hi == lo:
        hi = lo + 1e-9
    return np.exp(np.linspace(lo, hi, bins + 1))


def _bin_index(c: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # the last edge is inclusive; values outside the edges are clipped to the end bins
    return np.clip(np.searchsorted(edges, c, side="right") - 1, 0, len(edges) - 2)


def complexity_weights(complexity: Sequence[float], reference: Sequence[float],
                       edges: Sequence[float]) -> tuple[np.ndarray, float]:
    """Weights (summing to 1) that give ``complexity`` the binned distribution of
    ``reference``, and the coverage: the share of the reference's mass in bins the
    population has models in (1.0: it matches everywhere)."""
    c = np.asarray(complexity, dtype=float)
    r = np.asarray(reference, dtype=float)
    edges = np.asarray(edges, dtype=float)
    if c.size == 0 or r.size == 0:
        raise ValueError("complexity: both the population and the reference need values")
    nb = len(edges) - 1
    target = np.bincount(_bin_index(r, edges), minlength=nb) / r.size
    ib = _bin_index(c, edges)
    counts = np.bincount(ib, minlength=nb)
    w = np.where(counts[ib] > 0, target[ib] / np.maximum(counts[ib], 1), 0.0)
    coverage = float(target[counts > 0].sum())
    if w.sum() <= 0:  # no overlap with the reference at all: fall back to equal weights
        return np.full(c.size, 1.0 / c.size), 0.0
    return w / w.sum(), coverage


def ks_statistic(a: Sequence[float], b: Sequence[float],
                 wa: Sequence[float] | None = None, wb: Sequence[float] | None = None) -> float:
    """``sup_e |F_a(e) - F_b(e)|`` (the two-sample Kolmogorov-Smirnov statistic, weighted)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    at = np.union1d(a, b)
    return float(np.max(np.abs(edf_at(a, at, wa) - edf_at(b, at, wb))))


def edf_area(errors: Sequence[float], lo: float, hi: float,
             weights: Sequence[float] | None = None) -> float:
    """``(1 / (hi - lo)) * integral_lo^hi F(e) de``: 1 when every error is at ``lo``, 0 when
    every error is at or past ``hi``. The same as 1 - the weighted mean of the errors clipped
    to ``[lo, hi]`` and scaled to [0, 1]."""
    if not hi > lo:
        raise ValueError(f"edf_area: hi {hi} must be above lo {lo}")
    e = np.clip(np.asarray(errors, dtype=float), lo, hi)
    w = _weights(e.size, weights)
    return float(np.sum(w * (hi - e)) / (hi - lo))


@dataclass(frozen=True)
class Comparison:
    """Population ``b`` against ``a``: KS statistic and area difference (b - a; > 0: ``b``
    has more of its mass at low error), each with a percentile bootstrap interval."""

    ks: float
    ks_low: float
    ks_high: float
    area_diff: float
    area_low: float
    area_high: float
    bootstraps: int


def bootstrap_compare(a: Sequence[float], b: Sequence[float], *,
                      ca: Sequence[float] | None = None, cb: Sequence[float] | None = None,
                      reference: Sequence[float] | None = None, bins: int = 4,
                      lo: float, hi: float, n: int = 2000, level: float = 0.95,
                      seed: int = 0) -> Comparison:
    """Compare two error populations; with complexities ``ca`` / ``cb`` and a ``reference``
    complexity sample, on the normalised EDFs (weights recomputed on each resample)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    normalise = ca is not None and cb is not None and reference is not None
    if normalise:
        ca, cb = np.asarray(ca, dtype=float), np.asarray(cb, dtype=float)
        ref = np.asarray(reference, dtype=float)
        edges = complexity_bins(np.r_[ca, cb, ref], bins)

    def stats(ia: np.ndarray, ib: np.ndarray) -> tuple[float, float]:
        wa = complexity_weights(ca[ia], ref, edges)[0] if normalise else None
        wb = complexity_weights(cb[ib], ref, edges)[0] if normalise else None
        return (ks_statistic(a[ia], b[ib], wa, wb),
                edf_area(b[ib], lo, hi, wb) - edf_area(a[ia], lo, hi, wa))

    ks, area = stats(np.arange(a.size), np.arange(b.size))
    rng = np.random.default_rng(seed)
    draws = np.array([stats(rng.integers(0, a.size, a.size), rng.integers(0, b.size, b.size))
                      for _ in range(n)])
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    ks_lo, ks_hi = np.percentile(draws[:, 0], q)
    ar_lo, ar_hi = np.percentile(draws[:, 1], q)
    return Comparison(ks, float(ks_lo), float(ks_hi), area, float(ar_lo), float(ar_hi), n)


@dataclass(frozen=True)
class GoodRange:
    """Where the best models of a population lie on one knob: the 2.5 / 50 / 97.5
    percentiles of the best-of-subsample's value (pycls's bootstrapped filter)."""

    low: float
    median: float
    high: float


def _best_of_subsamples(e: np.ndarray, n: int, fraction: float, seed: int) -> np.ndarray:
    k = max(1, int(e.size * fraction))
    picks = np.random.default_rng(seed).integers(0, e.size, size=(n, k))
    return picks[np.arange(n), np.argmin(e[picks], axis=1)]


def good_range(errors: Sequence[float], values: Sequence[float], *, n: int = BOOTSTRAPS,
               fraction: float = SUBSAMPLE, alpha: float = 5.0, seed: int = 0) -> GoodRange:
    """The knob's good range: ``n`` subsamples of ``fraction`` of the models (with
    replacement), each's lowest-error model's value, and its percentiles."""
    e = np.asarray(errors, dtype=float)
    v = np.asarray(values, dtype=float)
    if e.size == 0 or e.shape != v.shape:
        raise ValueError("good_range: errors and values need the same, non-zero length")
    best = _best_of_subsamples(e, n, fraction, seed)
    low, median, high = np.percentile(v[best], [alpha / 2, 50, 100 - alpha / 2])
    return GoodRange(float(low), float(median), float(high))


def good_levels(errors: Sequence[float], levels: Sequence[str], *, n: int = BOOTSTRAPS,
                fraction: float = SUBSAMPLE, seed: int = 0) -> dict[str, float]:
    """A categorical knob's counterpart of :func:`good_range`: how often each level holds the
    best model of a subsample (shares summing to 1, over every level given)."""
    e = np.asarray(errors, dtype=float)
    if e.size == 0 or e.size != len(levels):
        raise ValueError("good_levels: errors and levels need the same, non-zero length")
    best = _best_of_subsamples(e, n, fraction, seed)
    names = list(dict.fromkeys(levels))
    counts = dict.fromkeys(names, 0)
    for i in best:
        counts[levels[i]] += 1
    return {k: counts[k] / n for k in names}
