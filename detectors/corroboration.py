"""Corroboration: the same hub x HS6 rising from two or more reporters at once.

When re-export networks switch suppliers into a hub, more than one exporting
country shows the rise in the same month, each perhaps too noisy to alert on
its own. Within one (partner, flow, hs6) group, once at least ``min_alerts``
lanes alert on their own, every other lane of the group that is *rising* (its
robust value or count evidence at least ``min_z``, its month at least
``min_ratio`` times its expected value and at least ``min_excess`` above it) is
*corroborated*, provided at least ``min_reporters`` lanes alert or rise:
corroborated lanes alert, and alerts gain severity.

The peer's alert stands in for the persistence a lone lane would need, so the
bar is lower in significance but higher in money: a corroborated lane must
matter (``min_excess``) to be worth an analyst's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transitwatch.detectors.numeric import nan_to_num
from transitwatch.detectors.params import check_positive, check_range


@dataclass(frozen=True, kw_only=True, slots=True)
class CorroborationParams:
    """Parameters of :class:`CorroborationDetector`.

    Examples
    --------
    >>> CorroborationParams().min_reporters
    3
    >>> CorroborationParams(min_alerts=0)
    Traceback (most recent call last):
    ...
    transitwatch.detectors.errors.InvalidParameterError: invalid parameter min_alerts=0: expected a number in [1, 100]
    """

    min_reporters: int = 3
    min_alerts: int = 1
    min_z: float = 2.0
    min_ratio: float = 2.0
    min_excess: float = 100_000.0

    def __post_init__(self) -> None:
        check_range(self, "min_reporters", 2, 100)
        check_range(self, "min_alerts", 1, 100)
        check_positive(self, "min_z", "min_ratio", "min_excess", allow_zero=True)


class CorroborationDetector:
    """Marks the lanes of a hub x HS6 group that rise together.

    Examples
    --------
    >>> import numpy as np
    >>> d = CorroborationDetector(CorroborationParams(min_reporters=2))
    >>> d.score_many(group=np.array([0, 0, 0, 1, 1]), alert=np.array([True, False, False, False, False]),
    ...     z=np.array([0.0, 2.5, 1.0, 3.0, 3.0]), ratio=np.full(5, 3.0),
    ...     excess=np.array([0.0, 150e3, 150e3, 150e3, 150e3])).tolist()
    [True, True, False, False, False]
    """

    name = "corroboration"

    def __init__(self, params: CorroborationParams | None = None) -> None:
        self.params = params or CorroborationParams()

    def rising(self, *, z: np.ndarray, ratio: np.ndarray, excess: np.ndarray) -> np.ndarray:
        """Lanes whose month would alert with a peer's support."""
        p = self.params
        return (z >= p.min_z) & (nan_to_num(ratio) >= p.min_ratio) & (nan_to_num(excess) >= p.min_excess)

    def score_many(
        self, *, group: np.ndarray, alert: np.ndarray, z: np.ndarray, ratio: np.ndarray, excess: np.ndarray
    ) -> np.ndarray:
        """Corroborated lanes; ``z`` is each lane's stronger robust evidence (value or
        count), 0 where a lane may not alert."""
        if group.size == 0:
            return np.zeros(0, dtype=bool)
        n_groups = int(group.max()) + 1
        rising = alert | self.rising(z=z, ratio=ratio, excess=excess)
        n_alert = np.bincount(group, weights=alert, minlength=n_groups)
        n_rising = np.bincount(group, weights=rising, minlength=n_groups)
        ok = (n_alert >= self.params.min_alerts) & (n_rising >= self.params.min_reporters)
        return rising & ok[group]
