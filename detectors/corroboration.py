"""Corroboration: the same hub x HS6 rising from several reporters at once.

When re-export networks switch suppliers into a hub, several exporting
countries show the rise in the same month. Within one (partner, flow, hs6)
group, if at least ``min_alerts`` lanes alert and at least ``min_reporters``
lanes alert or are candidates, every such lane is *corroborated*: alerts gain severity and
candidates become alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.params import check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class CorroborationParams:
    """Parameters of :class:`CorroborationDetector`.

    Examples
    --------
    >>> CorroborationParams().min_reporters
    3
    """

    min_reporters: int = 3
    min_alerts: int = 2

    def __post_init__(self) -> None:
        check_range(self, "min_reporters", 2, 100)
        check_range(self, "min_alerts", 1, 100)


class CorroborationDetector:
    """Marks the lanes of a hub x HS6 group that rise together.

    Examples
    --------
    >>> import numpy as np
    >>> d = CorroborationDetector()
    >>> d.score_many(group=np.array([0, 0, 0, 1]), alert=np.array([True, True, False, True]),
    ...     candidate=np.array([False, False, True, False])).tolist()
    [True, True, True, False]
    """

    name = "corroboration"

    def __init__(self, params: CorroborationParams | None = None) -> None:
        self.params = params or CorroborationParams()

    def score_many(self, *, group: np.ndarray, alert: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        if group.size == 0:
            return np.zeros(0, dtype=bool)
        n_groups = int(group.max()) + 1
        rising = alert | candidate
        n_alert = np.bincount(group, weights=alert, minlength=n_groups)
        n_rising = np.bincount(group, weights=rising, minlength=n_groups)
        ok = (n_alert >= self.params.min_alerts) & (n_rising >= self.params.min_reporters)
        return rising & ok[group]
