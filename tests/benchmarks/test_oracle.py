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


def test_new_consignees_are_counted_per_series_with_a_memory():
    # series 0: consignee 7 in months 0 and 2 (new once), then again after 40 months (new again)
    new = labelled.new_parties(np.array([0, 0, 0, 0, 1]), np.array([0, 2, 2, 42, 2]), np.array([7, 7, 8, 7, 7]), (2, 43))
    assert new[0, [0, 2, 42]].tolist() == [1.0, 1.0, 1.0] and new[1, 2] == 1.0 and new.sum() == 4


def test_consignees_add_to_the_oracle_on_a_scenario():
    scn = labelled.generate(seed=5, hub_series=300, months=60)
    truth = Truth.from_rows(scn.truth)
    first = scoring.month_index(scn.periods[0])
    last = first + len(scn.periods) - 1
    assert 0.0 < scn.null.new_rate < 0.05   # one-off buyers are rare without surges

    def f1(scores):
        return scoring.operating_point(truth, oracle.scored(scn.null, first, scores), fa_per_1000=2.0,
                                       first=first, last=last)[1].f1

    assert f1(oracle.month_scores(scn.null)) > f1(oracle.month_scores(scn.null, party_weight=0.0))


def test_scored_covers_every_evaluated_series_month():
    scn = _scenario()
    first = scoring.month_index(scn.periods[0])
    out = oracle.scored(scn.null, first)
    assert len(out) == len(scn.null.keys) * (len(scn.periods) - oracle.WARMUP_MONTHS)
    assert min(m for _, m, _ in out) == first + oracle.WARMUP_MONTHS


def test_learning_the_expected_count_costs_recall_on_the_same_data():
    scn = labelled.generate(seed=5, hub_series=300, months=60)
    truth = Truth.from_rows(scn.truth)
    first = scoring.month_index(scn.periods[0])
    last = first + len(scn.periods) - 1

    def f1(scores):
        return scoring.operating_point(truth, oracle.scored(scn.null, first, scores), fa_per_1000=2.0,
                                       first=first, last=last)[1].f1

    known, learned = f1(oracle.month_scores(scn.null, 0.0, 0.0)), f1(oracle.learned_scores(scn.null))
    assert 0.0 < learned < known


def test_learned_expected_count_keeps_a_surge_out_until_it_lasts():
    keys = (("DE", "KG", "export", "854231"),)
    rng = np.random.default_rng(0)
    count = rng.poisson(3.0, (1, 72)).astype(float)
    count[0, 30:] = rng.poisson(15.0, 42)
    null = labelled.NullModel(keys=keys, expected=np.full((1, 72), 3.0), shape=np.array([30.0]), count=count,
                              z_sum=np.zeros((1, 72)), z_max=np.zeros((1, 72)))
    month = oracle.learned_scores(null)
    assert (month[0, 30:36] > 3).all()      # not learned while it may be a surge
    assert (month[0, 62:] < 3).all()        # a lasting level is learned from its sixth month on


def test_against_oracle_sets_transitwatch_beside_the_bound():
    from benchmarks import detection_report
    from benchmarks.detection import Row, Run

    def row(method, f1, r4):
        return Row(method, "declarations", scoring.Score(**{**_zero_score(), "f1": f1, "recall_x4": r4}), "", set(), 0.0)

    run = Run({}, None, 0, 0, [row("transitwatch combined", 0.6, 0.6), row("oracle: true null model known", 0.75, 0.75),
                               row("oracle, counts only", 0.7, 0.7),
                               row("learned null: counts only", 0.55, 0.5)], {}, {}, {}, {}, None)
    text = " ".join(detection_report.against_oracle(run))
    assert "80% of the oracle's event F1 (0.600 against 0.750)" in text
    assert "from 0.700 to 0.550" in text


def _zero_score():
    import dataclasses
    return {f.name: 0 for f in dataclasses.fields(scoring.Score)}
