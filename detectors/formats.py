"""The names of the input formats, alone: what ``--format`` and ``[input] format`` may say.

Kept apart from :mod:`transitwatch.detectors.layouts` (which needs numpy and the contract) so the
command line can offer them without loading either; ``layouts`` defines every layout named here.

>>> FORMATS[:4]
('auto', 'jsonl', 'csv', 'parquet')
"""

from __future__ import annotations

__all__ = ["CONTAINERS", "FORMATS", "LAYOUT_NAMES"]

#: a container with transitwatch's own columns
CONTAINERS = ("jsonl", "csv", "parquet")
#: a layout analysts download (its container, CSV or Parquet, is found from the file)
LAYOUT_NAMES = ("comext", "comext-extract", "comtrade", "comtrade-legacy")
FORMATS = ("auto", *CONTAINERS, *LAYOUT_NAMES)
