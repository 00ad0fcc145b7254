"""The shape every transitwatch detector shares.

Sign convention, written once: **a higher score is more anomalous**. Scores are
``-log10`` of a tail probability where one exists, so ``score >= 3`` reads as
"one chance in a thousand under the baseline".

Detectors are small frozen parameter objects with pure, vectorized methods.
Learned state lives outside them, in one row per series of a
:class:`~transitwatch.detectors.table.StateTable` (or a :class:`~transitwatch.detectors.table.SeriesState`
for one series), so millions of series cost rows of numbers, not objects.
Scoring is not deciding: :mod:`transitwatch.detectors.policy` turns scores into a verdict,
and months that look anomalous are *protected*, never learned into the
baseline.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Months of closed history kept per series (three years: enough for two
#: same-months-last-year and a 12-month level).
HISTORY_MONTHS = 36

#: Detector names, in the order used to pick an alert's primary detector.
DETECTORS = (
    "seasonal_surge", "ramp", "novelty", "new_consignees", "diversion", "hub_shift", "corroboration", "mirror",
    "isolation",
)

#: A consignee is new on a series when the series has not seen it in this many months.
PARTY_MEMORY_MONTHS = 36

_NOT_WORD = re.compile(r"[\W_]+")


@functools.lru_cache(maxsize=1 << 16)
def party_key(name: str) -> str:
    """How a consignee is recognised: case, punctuation and spacing ignored, so that the same
    buyer written twice ("ACME Trade LLC", "Acme-Trade, LLC") is not a new one ("" for a
    name with no letter or digit).

    >>> party_key("Acme-Trade, LLC") == party_key(" ACME TRADE  llc ") == "acme trade llc"
    True
    >>> party_key("Ök Tic. A.Ş."), party_key("--")
    ('ök tic a ş', '')
    """
    return _NOT_WORD.sub(" ", name.casefold()).strip()


@dataclass(frozen=True, slots=True)
class Window:
    """What the detectors see for ``n`` series at one calendar month.

    History arrays are ``(n, HISTORY_MONTHS)``, oldest first, calendar aligned:
    column ``-1`` is last month and column ``-12`` the same month a year ago.
    ``NaN`` in ``values`` means "not known" (before the data starts); a month
    known to have no trade is ``0``. ``counts`` is ``NaN`` where declarations
    are not counted (monthly statistics). ``parties`` and ``party`` are the new
    consignees of each month (consignees the series had not seen in
    :data:`PARTY_MEMORY_MONTHS` months), ``NaN`` where not counted. ``new_top`` is
    the month's value to its largest new consignee (``0`` without one, ``NaN`` where not
    known). ``leads`` is each month's history of that value where the new consignee also took
    the month's largest declaration (the month was *led* by a new consignee; ``0`` where it was
    not, ``NaN`` where not known): the lane's own history of new-buyer values.
    """

    values: np.ndarray
    counts: np.ndarray
    protected: np.ndarray
    value: np.ndarray
    count: np.ndarray
    max_item: np.ndarray
    ramp: np.ndarray
    streak: np.ndarray
    parties: np.ndarray
    party: np.ndarray
    new_top: np.ndarray
    leads: np.ndarray

    @property
    def n(self) -> int:
        return int(self.value.shape[0])


class Detector(Protocol):
    """A per-series detector: pure scoring of a :class:`Window`."""

    name: str

    def score_many(self, window: Window) -> np.ndarray:
        """Scores for every series of the window; higher is more anomalous."""
        ...
