"""IsolationForest over the engineered lane-month features.

Generic learned detectors do poorly on monthly trade without domain features
(field notes, section 3), so this model sees the same features the analysts'
signals are built from (:mod:`transitwatch.detectors.features`). It is fitted once on the
first ``fit_months`` closed months (a reference period) and then scores every
lane-month. It stays out of the alerting path unless the detection benchmark
shows it adds recall at the same false-alarm rate (``in_alerting_path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from transitwatch.detectors.errors import TransitwatchError
from transitwatch.detectors.params import check_positive, check_range

if TYPE_CHECKING:  # scikit-learn (and most of scipy with it) loads only when a model is fitted
    from sklearn.ensemble import IsolationForest


@dataclass(frozen=True, kw_only=True, slots=True)
class IsolationParams:
    """Parameters of :class:`IsolationForestDetector`.

    Examples
    --------
    >>> IsolationParams(fit_months=1)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter fit_months=1: expected a number in [3, 60]
    """

    in_alerting_path: bool = False
    fit_months: int = 12
    n_estimators: int = 200
    max_fit_rows: int = 50_000
    threshold: float = 0.65
    min_excess: float = 10_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "fit_months", 3, 60)
        check_range(self, "n_estimators", 10, 2000)
        check_range(self, "max_fit_rows", 100, 10_000_000)
        check_range(self, "threshold", 0.0, 1.0)
        check_positive(self, "min_excess", allow_zero=True)


class NotFittedError(TransitwatchError, RuntimeError):
    """The model was asked to score before it was fitted."""


class IsolationForestDetector:
    """Higher score is more anomalous (scikit-learn's ``score_samples`` negated,
    so the score lies in (0, 1) like the original paper's anomaly score).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = IsolationForestDetector(IsolationParams(n_estimators=50)).fit(rng.normal(size=(500, 3)))
    >>> s = d.score_many(np.array([[0.0, 0, 0], [8.0, 8, 8]]))
    >>> bool(s[1] > s[0])
    True
    """

    name = "isolation"

    def __init__(self, params: IsolationParams | None = None) -> None:
        self.params = params or IsolationParams()
        self.model_: IsolationForest | None = None

    def fit(self, x: np.ndarray) -> IsolationForestDetector:
        p = self.params
        rng = np.random.default_rng(p.seed)
        if x.shape[0] > p.max_fit_rows:
            x = x[np.sort(rng.choice(x.shape[0], p.max_fit_rows, replace=False))]
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=p.n_estimators, random_state=p.seed).fit(x)
        return self

    @property
    def fitted(self) -> bool:
        return self.model_ is not None

    def score_many(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise NotFittedError("fit the IsolationForest on a reference period before scoring")
        if x.shape[0] == 0:
            return np.zeros(0)
        return -self.model_.score_samples(x)
