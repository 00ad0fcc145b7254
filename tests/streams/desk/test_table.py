"""The case list's query: parsed from and written back to the URL; filters, sort, groups."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from transitwatch.streams.desk.table import ListQuery, apply


def rows():
    return [
        {"case_id": "c1", "severity": "high", "confidence": "low", "status": "open", "lane": "DE>KG export 854231",
         "reporter": "DE", "partner": "KG", "hs6": "854231", "goods": "Processors", "tier": "1", "onset": "2022-03",
         "months": 4, "peak_ratio": 9.0, "excess": 5e5, "detectors": "ramp, seasonal_surge", "feedback": "",
         "suppressed": False, "search": "c1 processors germany kyrgyzstan"},
        {"case_id": "c2", "severity": "low", "confidence": "high", "status": "closed", "lane": "PL>KZ export 851762",
         "reporter": "PL", "partner": "KZ", "hs6": "851762", "goods": "Routers", "tier": "2", "onset": "2021-07",
         "months": 2, "peak_ratio": None, "excess": 1e4, "detectors": "novelty", "feedback": "dismissed",
         "suppressed": True, "search": "c2 routers poland kazakhstan"},
        {"case_id": "c3", "severity": "medium", "confidence": "medium", "status": "open", "lane": "PL>KG export 880730",
         "reporter": "PL", "partner": "KG", "hs6": "880730", "goods": "Aircraft parts", "tier": "3.B",
         "onset": "2022-06", "months": 1, "peak_ratio": 3.0, "excess": 2e5, "detectors": "seasonal_surge",
         "feedback": "confirmed", "suppressed": False, "search": "c3 aircraft poland kyrgyzstan"},
    ]


def ids(view):
    return [r["case_id"] for r in view.rows]


def q(**params):
    return ListQuery.parse({k: v if isinstance(v, list) else [v] for k, v in params.items()})


def test_default_view_hides_suppressed_and_sorts_by_severity():
    view = apply(rows(), q())
    assert ids(view) == ["c1", "c3"] and view.hidden_suppressed == 1 and view.total == 3
    assert ids(apply(rows(), q(suppressed="1"))) == ["c1", "c3", "c2"]


def test_filters():
    assert ids(apply(rows(), q(partner="KG", reporter="PL"))) == ["c3"]
    assert ids(apply(rows(), q(partner=["KG", "KZ"], suppressed="1"))) == ["c1", "c3", "c2"]
    assert ids(apply(rows(), q(hs="85", suppressed="1"))) == ["c1", "c2"]
    assert ids(apply(rows(), q(hs="8807"))) == ["c3"]
    assert ids(apply(rows(), q(detector="seasonal_surge"))) == ["c1", "c3"]
    assert ids(apply(rows(), q(tier="3.B"))) == ["c3"]
    assert ids(apply(rows(), q(onset_from="2022-04"))) == ["c3"]
    assert ids(apply(rows(), q(onset_to="2022-04", suppressed="1"))) == ["c1", "c2"]
    assert ids(apply(rows(), q(feedback="none"))) == ["c1"]
    assert ids(apply(rows(), q(feedback="dismissed", suppressed="1"))) == ["c2"]
    assert ids(apply(rows(), q(status="closed", suppressed="1"))) == ["c2"]
    assert ids(apply(rows(), q(q="AIRCRAFT"))) == ["c3"]


def test_sort_any_column_missing_values_last_both_ways():
    assert ids(apply(rows(), q(sort="excess", dir="asc", suppressed="1"))) == ["c2", "c3", "c1"]
    assert ids(apply(rows(), q(sort="peak_ratio", dir="desc", suppressed="1"))) == ["c1", "c3", "c2"]
    assert ids(apply(rows(), q(sort="peak_ratio", dir="asc", suppressed="1"))) == ["c3", "c1", "c2"]
    assert ids(apply(rows(), q(sort="confidence", dir="desc", suppressed="1"))) == ["c2", "c3", "c1"]
    assert ids(apply(rows(), q(sort="lane", suppressed="1"))) == ["c1", "c3", "c2"]


def test_group_by_hub_counts_and_keeps_the_sort():
    view = apply(rows(), q(group="partner", suppressed="1"), {"KG": "KG Kyrgyzstan"})
    assert [(g.label, len(g.rows)) for g in view.groups] == [("KG Kyrgyzstan", 2), ("KZ", 1)]
    assert ids(view) == ["c1", "c3", "c2"]


def test_bad_parameters_are_ignored_and_said():
    query = q(sort="nonsense", group="company", onset_from="2022/01", hs="85ab")
    assert (query.sort, query.group, query.onset_from, query.hs) == ("severity", "", "", "85")
    assert len(query.problems) == 3


def test_sort_links_flip_the_direction_of_the_current_column():
    query = q(sort="excess", dir="desc")
    assert parse_qs(urlsplit(query.sorted_by("excess")).query)["dir"] == ["asc"]
    assert parse_qs(urlsplit(query.sorted_by("lane")).query)["sort"] == ["lane"]


months = st.from_regex(r"20[12][0-9]-(0[1-9]|1[0-2])", fullmatch=True)


@given(st.builds(
    ListQuery,
    severity=st.lists(st.sampled_from(["low", "medium", "high"]), unique=True).map(lambda v: tuple(sorted(v))),
    partner=st.lists(st.sampled_from(["KG", "KZ", "AM"]), unique=True).map(lambda v: tuple(sorted(v))),
    hs=st.from_regex(r"[0-9]{0,6}", fullmatch=True), onset_from=st.one_of(st.just(""), months),
    q=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Zs", "Cc")),
                max_size=20),
    sort=st.sampled_from(["severity", "lane", "excess"]), desc=st.booleans(),
    group=st.sampled_from(["", "partner", "hs6"]), suppressed=st.booleans(), page=st.integers(1, 50),
    per_page=st.sampled_from([50, 100, 250, 0])))
def test_every_view_survives_its_url(query):
    assert ListQuery.parse(parse_qs(urlsplit(query.url()).query)) == query


def test_pages_split_the_view_and_keep_the_groups_counts():
    many = [{**rows()[0], "case_id": f"c{i:03d}", "partner": "KG" if i % 3 else "KZ", "excess": float(i)}
            for i in range(120)]
    view = apply(many, q(sort="excess", dir="asc", per_page="50", page="3"))
    assert (view.page, view.pages, view.first, len(view.page_rows)) == (3, 3, 100, 20)
    assert [r["case_id"] for r in view.page_rows] == [f"c{i:03d}" for i in range(100, 120)]
    assert len(view.rows) == 120  # the exports hold the whole view
    assert apply(many, q(per_page="all")).pages == 1
    assert apply(many, q(per_page="50", page="99")).page == 3  # past the end: the last page
    grouped = apply(many, q(group="partner", per_page="50"))
    assert [(g.key, len(g.rows)) for g in grouped.groups] == [("KG", 80), ("KZ", 40)]
    assert sum(len(g.rows) for g in grouped.page_groups) == 50
    assert q(per_page="7").problems and q(per_page="7").per_page == 100


def test_group_links_drill_into_the_group():
    query = q(group="partner", page="2")
    assert parse_qs(urlsplit(query.drill("partner", "KZ")).query) == {"partner": ["KZ"], "dir": ["desc"]}
    assert parse_qs(urlsplit(q(group="reporter").drill("reporter", "DE")).query)["reporter"] == ["DE"]
    assert parse_qs(urlsplit(q(group="hs6").drill("hs6", "854231")).query)["hs"] == ["854231"]
