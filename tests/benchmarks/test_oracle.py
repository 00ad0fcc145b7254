"""The oracle bound's inputs match the generated data, and its scores behave."""

from __future__ import annotations

import collections

import numpy as np

from benchmarks import oracle, scoring
from benchmarks.scenarios import labelled
from benchmarks.scoring import Truth


def _scenario():
    return labelled.generate(seed=5, hub_series=120, months=60)


def test_null_model_counts_are_the_declarations_of_each_hub_series_month():
    scn = _scenario()
    null = scn.null
    row = {key: i for i, key in enumerate(null.keys)}
    first = scoring.month_index(scn.periods[0])
    seen, count = set(), collections.Counter()
    for d in scn.declarations:
        key = (d["reporter"], d["partner"], d.get("flow") or "export", d["hs_code"][:6])
        if key in row and d["declaration_id"] not in seen:  # re-sent duplicates are not new trade
            seen.add(d["declaration_id"])
            count[(row[key], scoring.month_index(d["date"][:7]) - first)] += 1
    expected = np.zeros_like(null.count)
    for (r, t), c in count.items():
        expected[r, t] = c
    assert np.array_equal(expected, null.count)
    assert null.expected.shape == null.count.shape and (null.shape > 0).all()


def test_the_oracle_ranks_surge_months_above_quiet_ones():
    scn = _scenario()
    truth = Truth.from_rows(scn.truth)
    first = scoring.month_index(scn.periods[0])
    scores = oracle.month_scores(scn.null)
    assert np.isfinite(scores[:, 2:]).all()
    row = {key: i for i, key in enumerate(scn.null.keys)}
    surged = [scores[row[s.key], s.onset - first + 2] for s in truth.surges if s.onset - first + 2 < scores.shape[1]]
    quiet = [scores[row[k], 30:] for k in row if k not in {s.key for s in truth.surges}]
    assert np.median(surged) > np.percentile(np.concatenate(quiet), 90)


def test_scored_covers_every_evaluated_series_month():
    scn = _scenario()
    first = scoring.month_index(scn.periods[0])
    out = oracle.scored(scn.null, first)
    assert len(out) == len(scn.null.keys) * (len(scn.periods) - oracle.WARMUP_MONTHS)
    assert min(m for _, m, _ in out) == first + oracle.WARMUP_MONTHS
