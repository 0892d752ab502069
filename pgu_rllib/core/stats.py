"""Summary statistics of a set of per-seed scores (no Ray): mean, std, median, IQM and a 95%
bootstrap confidence interval of the IQM.

The IQM is ``scipy.stats.trim_mean(x, 0.25)``, the interquartile mean rliable reports (Agarwal
et al. 2021). The interval is scipy's percentile bootstrap of the IQM over seeds (10,000
resamples, seed 0, so a summary is reproducible); with one seed it is that score twice.

Example::

    >>> s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    >>> s["median"], s["iqm"]
    (3.0, 3.0)
    >>> s["ci95"][0] <= s["iqm"] <= s["ci95"][1]
    True
"""
from __future__ import annotations

import statistics

import numpy as np
from scipy import stats as sps

RESAMPLES = 10_000


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end)."""
    return float(sps.trim_mean(np.asarray(scores, dtype=float), 0.25))


def summarize(scores) -> dict:
    """``{n, mean, std, median, iqm, ci95}`` of ``scores`` (std with n − 1). One score has no spread:
    its std and CI are None (shown as n/a), not 0."""
    x = [float(s) for s in scores]
    if not x:
        raise ValueError("no scores to summarize")
    if len(x) == 1:
        ci = None
    elif len(set(x)) == 1:
        ci = [x[0], x[0]]
    else:
        res = sps.bootstrap((np.asarray(x),), iqm_axis, n_resamples=RESAMPLES, confidence_level=0.95,
                            method="percentile", random_state=np.random.default_rng(0), vectorized=True)
        ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return {"n": len(x), "mean": statistics.fmean(x), "std": statistics.stdev(x) if len(x) > 1 else None,
            "median": statistics.median(x), "iqm": iqm(x), "ci95": ci}


def iqm_axis(x, axis=-1):
    """``iqm`` along ``axis`` (the vectorised form ``scipy.stats.bootstrap`` calls)."""
    return sps.trim_mean(x, 0.25, axis=axis)
