"""The alert record and its plain-words explanation.

Every record is one month of one lane's case (:mod:`transitwatch.detectors.cases`).
``alert_id`` is derived from the lane and the period, so a re-run over the
same data gives the same ids, and the early alert of a month and the month-end
update of the same lane and month share the id: a consumer can upsert.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from transitwatch.detectors.reference import chpl, country_name
from transitwatch.detectors.table import SeriesKey


def alert_id(key: SeriesKey, period: str) -> str:
    """Deterministic id of the record of a lane and month.

    Examples
    --------
    >>> alert_id(SeriesKey("DE", "AM", "export", "854231"), "2022-03")
    'tw-...'
    >>> alert_id(SeriesKey("DE", "AM", "export", "854231"), "2022-03") != alert_id(
    ...     SeriesKey("DE", "AM", "export", "854231"), "2022-04")
    True
    """
    text = "|".join((*key, period))
    return "tw-" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def period_of(month: int) -> str:
    """``YYYY-MM`` of a month index (``year * 12 + month - 1``).

    Examples
    --------
    >>> period_of(2022 * 12 + 2)
    '2022-03'
    """
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def money(value: float | None, currency: str) -> str:
    """A short amount for prose.

    Examples
    --------
    >>> money(1_640_000, "EUR"), money(52_300, "USD"), money(812.0, "USD")
    ('EUR 1.64m', 'USD 52.3k', 'USD 812')
    """
    if value is None:
        return "unknown"
    if abs(value) >= 1e9:
        return f"{currency} {value / 1e9:.2f}bn"
    if abs(value) >= 1e6:
        return f"{currency} {value / 1e6:.2f}m"
    if abs(value) >= 1e3:
        return f"{currency} {value / 1e3:.1f}k"
    return f"{currency} {value:.0f}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert on one lane and month. See ``docs/alerts.md``."""

    alert_id: str
    series_id: str
    reporter: str
    partner: str
    flow: str
    hs6: str
    hs_description: str | None
    chpl_tier: str | None
    period: str
    detectors: tuple[str, ...]
    score: float
    severity: str
    observed_value: float
    baseline_value: float | None
    observed_count: int | None
    baseline_count: float | None
    ratio: float | None
    p_value: float | None
    currency: str
    top_exporters: tuple[dict[str, Any], ...]
    top_consignees: tuple[dict[str, Any], ...]
    corroborating_reporters: tuple[str, ...]
    early: bool
    as_of: str
    explanation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    confidence: str = ""  # how sure: low | medium | high | very high (docs/alerts.md, Severity)
    materiality: str = ""  # how much it matters: money over the baseline and CHPL tier
    # the sanctions calendar (detectors/sanctions.py): the goods' earliest export ban to a destination
    banned_since: str | None = None  # the day it applied from, YYYY-MM-DD; None: not in the calendar
    banned_by: str | None = None  # the measure, package and legal act
    months_since_ban: int | None = None  # the case's onset month minus the ban's month (negative: before)
    # the case this record updates (see detectors/cases.py and docs/alerts.md)
    case_id: str = ""
    case_severity: str = ""  # the highest severity of the case so far (severity is this month's own)
    case_status: str = ""  # open | escalated | closed
    case_event: str = ""  # opened | escalated | updated | closed: a notifier sends opened and escalated
    case_onset: str = ""  # the month the case opened
    case_months: int = 0  # closed months since the onset, this one included (1 in the onset month)
    case_level: float | None = None  # the pre-case level, frozen at the onset (a month, base currency)
    case_ratio: float | None = None  # this month's value against it
    case_peak_period: str = ""
    case_peak_ratio: float | None = None
    case_excess: float = 0.0  # cumulative excess over the pre-case level since the onset
    case_detectors: tuple[str, ...] = ()  # every detector that fired during the case
    case_note: str = ""  # why it closed, when it did

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("detectors", "top_exporters", "top_consignees", "corroborating_reporters", "case_detectors"):
            out[name] = list(out[name])
        return out


_WHAT = {
    "seasonal_surge": "a surge against its seasonal baseline",
    "ramp": "a rise building over several months",
    "ramp:quarter_record": "a quarter far above any quarter of the two years before",
    "ramp:level_shift": "a level shift: month after month above the lane's earlier highs",
    "novelty": "trade appearing on a lane that had almost none in the year before",
    "new_consignees": "a rise carried by consignees new to the lane",
    "diversion": "a rise while the same goods to {dest} collapse",
    "hub_shift": "a rise shared by most reporters' lanes into the hub",
    "corroboration": "a rise seen in the same month from {others}",
}


def hub_shift_text(*, partner: str, rising: int, reporters: int, ratio: float) -> str:
    """The sentence of a hub shift: how broad and how big.

    >>> hub_shift_text(partner="Armenia", rising=12, reporters=16, ratio=1.62)
    "12 of 16 reporters' lanes of this code into Armenia rose this month together (median x1.6): the hub moved, not one lane."
    """
    return (f"{rising} of {reporters} reporters' lanes of this code into {partner} rose this month together "
            f"(median x{ratio:.1f}): the hub moved, not one lane.")

# What carried a record's evidence (``evidence.carried_by``) besides the month's value and the
# detectors, as the explanation says it when the value alone is within the lane's usual range.
_CARRIED = {
    "count": "{count} declarations against about {expected_count:.1f} expected",
    "frequency": "trade month after month on a lane that traded now and then",
    "two_months": "a second unusual month in a row",
}

TEXT_PARTIES = 5  # parties an explanation names; the record names more


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``.

    >>> _and(["Poland"]), _and(["Poland", "Czechia"]), _and(["Poland", "Czechia", "Lithuania"])
    ('Poland', 'Poland and Czechia', 'Poland, Czechia and Lithuania')
    """
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, noun: str, plural: str | None = None) -> str:
    """``one reporter``, ``3 reporters``.

    >>> _count(1, "other reporter"), _count(3, "other reporter"), _count(2, "consignee")
    ('one other reporter', '3 other reporters', '2 consignees')
    """
    return f"one {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def reporters_phrase(corroborating: tuple[str, ...]) -> str:
    """The other reporters of a corroborated rise, counted and named.

    >>> reporters_phrase(("PL",)), reporters_phrase(("CZ", "LT", "PL"))
    ('one other reporter (Poland)', '3 other reporters (Czechia, Lithuania and Poland)')
    >>> reporters_phrase(())
    'other reporters'
    """
    if not corroborating:
        return "other reporters"
    return f"{_count(len(corroborating), 'other reporter')} ({_and([country_name(c) for c in corroborating])})"


def _phrases(detectors: tuple[str, ...], ramp_tests: tuple[str, ...]) -> list[str]:
    """Keys of ``_WHAT`` for the detectors; the ramp says which of its tests passed when the
    rise did not build (its quarter record or level shift alone).

    >>> _phrases(("seasonal_surge", "ramp"), ("level_shift",))
    ['seasonal_surge', 'ramp:level_shift']
    >>> _phrases(("ramp",), ("cusum", "level_shift"))
    ['ramp']
    """
    out = []
    for d in detectors:
        if d == "ramp" and ramp_tests and not {"cusum", "three_months_pooled"} & set(ramp_tests):
            out += [f"ramp:{t}" for t in ramp_tests]
        else:
            out.append(d)
    return out


def new_consignees_text(
    *,
    reporter: str,
    count: int,
    months: int,
    observed_months: int | None,
    named: tuple[dict[str, Any], ...],
    expected: float | None,
    currency: str,
) -> str:
    """The sentence naming a record's new consignees: how many, over which months, against how many
    months of the lane's history, who (biggest first, with their value and first day), and how many
    the lane's usual turnover of buyers would bring.

    Examples
    --------
    >>> named = ({"name": "Alfa LLC", "value": 1.2e6, "first_seen": "2022-03-04"},
    ...          {"name": "Beta OOO", "value": 3e5, "first_seen": "2022-03-11"})
    >>> print(new_consignees_text(reporter="Germany", count=3, months=1, observed_months=24, named=named,
    ...                           expected=0.8, currency="USD"))
    3 consignees of the month are new to this lane, none of them seen in the 24 months observed before: Alfa LLC (USD 1.20m, first on 2022-03-04), Beta OOO (USD 300.0k, first on 2022-03-11) and 1 more; about 0.8 would be expected at the lane's usual turnover of buyers.
    >>> print(new_consignees_text(reporter="Germany", count=1, months=2, observed_months=36, named=named[:1],
    ...                           expected=None, currency="USD"))
    One consignee of the last 2 months is new to this lane, not seen in the 36 months observed before: Alfa LLC (USD 1.20m, first on 2022-03-04).
    """
    when = "of the month" if months == 1 else f"of the last {months} months"
    head = (f"One consignee {when} is new to this lane" if count == 1
            else f"{count} consignees {when} are new to this lane")
    if observed_months:
        who = "not" if count == 1 else "none of them"
        head += f", {who} seen in the {_count(observed_months, 'month')} observed before"
    else:
        head += ", whose earlier consignees are not known"
    shown = [f"{p['name']} ({money(p['value'], currency)}, first on {p['first_seen']})"
             for p in named[:TEXT_PARTIES]]
    if shown and count > len(shown):
        shown.append(f"{count - len(shown)} more")
    sentence = head + (": " + _and(shown) if shown else "")
    if expected is not None:
        sentence += f"; about {expected:.1f} would be expected at the lane's usual turnover of buyers"
    return sentence + "."


def ban_text(*, since: str, by: str, destination: str, months: int) -> str:
    """The sentence on the goods' export ban and how long before the case's onset it came.

    >>> print(ban_text(since="2022-02-26", by="EU 833/2014 Annex VII, 2nd package", destination="Russia", months=3))
    The goods were banned for export to Russia from 2022-02-26 (EU 833/2014 Annex VII, 2nd package): the case opened 3 months after the ban.
    >>> print(ban_text(since="2023-02-26", by="X", destination="Russia", months=-2).split(": ")[-1])
    the case opened 2 months before the ban.
    >>> print(ban_text(since="2022-02-26", by="X", destination="Belarus", months=0).split(": ")[-1])
    the case opened in the month of the ban.
    """
    if months == 0:
        when = "in the month of the ban"
    else:
        when = f"{_count(abs(months), 'month')} {'after' if months > 0 else 'before'} the ban"
    return f"The goods were banned for export to {destination} from {since} ({by}): the case opened {when}."


def exporters_text(exporters: tuple[dict[str, Any], ...], distinct: int | None, total: float, currency: str) -> str:
    """The month's largest exporters with their value and share.

    >>> print(exporters_text(({"name": "A GmbH", "value": 750.0}, {"name": "B AG", "value": 150.0}), 5, 1000.0,
    ...                      "EUR"))
    The month's largest exporters (of 5): A GmbH (EUR 750, 75%) and B AG (EUR 150, 15%).
    >>> print(exporters_text(({"name": "A GmbH", "value": 1000.0},), 1, 1000.0, "EUR"))
    The month's only exporter: A GmbH (EUR 1.0k, 100%).
    """
    shown = [f"{e['name']} ({money(e['value'], currency)}, {e['value'] / total:.0%})" for e in exporters]
    if distinct == 1 and len(shown) == 1:
        return f"The month's only exporter: {shown[0]}."
    if distinct is not None and distinct > len(shown):
        return f"The month's largest exporters (of {distinct}): {_and(shown)}."
    return f"The month's exporters: {_and(shown)}."


def explain(
    *,
    key: SeriesKey,
    period: str,
    detectors: tuple[str, ...],
    ramp_tests: tuple[str, ...] = (),
    observed_value: float,
    baseline_value: float | None,
    observed_count: int | None,
    baseline_count: float | None,
    ratio: float | None,
    p_value: float | None,
    currency: str,
    top_exporters: tuple[dict[str, Any], ...],
    corroborating: tuple[str, ...],
    early: bool,
    as_of: str,
    destination_ratio: float | None,
    destinations: str,
    destination_before: float | None = None,
    destination_after: float | None = None,
    new_consignees: int | None = None,
    new_consignees_expected: float | None = None,
    new_consignees_months: int | None = None,
    new_consignees_named: tuple[dict[str, Any], ...] = (),
    new_consignees_observed: int | None = None,
    band_high: float | None = None,
    carried_by: tuple[str, ...] = (),
    exporters: int | None = None,
) -> str:
    """One paragraph an analyst can read without knowing the code.

    One expected value, one ratio (the value over it) and one usual range (``band_high``, the top
    of the lane's usual range for a single month, in the same terms); when the month's value is
    within that range, the paragraph says what carried the evidence instead (``carried_by``).

    Examples
    --------
    >>> print(explain(key=SeriesKey("DE", "AM", "export", "854231"), period="2022-03",
    ...     detectors=("seasonal_surge",), observed_value=1.64e6, baseline_value=5.7e5,
    ...     observed_count=14, baseline_count=4.2, ratio=2.88, p_value=3e-7, currency="EUR",
    ...     top_exporters=(), corroborating=(), early=False, as_of="2022-03-31",
    ...     destination_ratio=None, destinations="Russia or Belarus", band_high=1.2e6,
    ...     carried_by=("value", "count")))
    Germany's exports to Armenia of HS 854231 (Electronic integrated circuits: processors and c...; CHPL tier 1) reached EUR 1.64m in 2022-03, 2.9 times the expected EUR 570.0k (from 14 declarations against about 4.2 expected). That is above the lane's usual range for a single month (up to EUR 1.20m). A change this large is far beyond the lane's usual variation (p < 1e-6). Detected as a surge against its seasonal baseline.
    >>> print(explain(key=SeriesKey("SE", "TR", "export", "853400"), period="2022-01",
    ...     detectors=("seasonal_surge", "corroboration"), observed_value=49_800.0, baseline_value=3_190.0,
    ...     observed_count=7, baseline_count=0.8, ratio=15.6, p_value=2e-4, currency="USD",
    ...     top_exporters=(), corroborating=("CZ",), early=False, as_of="2022-01-31",
    ...     destination_ratio=None, destinations="Russia or Belarus", band_high=119_500.0,
    ...     carried_by=("count", "corroboration")))
    Sweden's exports to Turkey (Türkiye) of HS 853400 (Printed circuits; CHPL tier 4.A) reached USD 49.8k in 2022-01, 15.6 times the expected USD 3.2k (from 7 declarations against about 0.8 expected). That alone is within the lane's usual range for a single month (up to USD 119.5k); what stands out is 7 declarations against about 0.8 expected. A change this large would arise by chance about once in 5,000 months (p = 2e-04). Detected as a surge against its seasonal baseline; a rise seen in the same month from one other reporter (Czechia).
    """
    goods = chpl().get(key.hs6)
    label = f"HS {key.hs6}"
    if goods is not None:
        label += f" ({goods.description[:48].rstrip(' ,;')}{'...' if len(goods.description) > 48 else ''}; CHPL tier {goods.tier})"
    reporter, partner = country_name(key.reporter), country_name(key.partner)
    others = reporters_phrase(corroborating)
    verb = "has already reached" if early else "reached"
    parts = [f"{reporter}'s {key.flow}s to {partner} of {label} {verb} {money(observed_value, currency)} in {period}"]
    if early:
        parts[0] += f" by {as_of}, before the month is over"
    if baseline_value is not None and baseline_value > 0 and ratio is not None:
        parts[0] += f", {ratio:.1f} times the expected {money(baseline_value, currency)}"
    elif baseline_value is not None:
        parts[0] += f", against almost nothing ({money(baseline_value, currency)} a month) in the year before"
    if observed_count is not None and baseline_count is not None:
        parts[0] += f" (from {observed_count} declarations against about {baseline_count:.1f} expected)"
    sentences = [parts[0] + "."]
    what = [_WHAT[d].format(dest=destinations, others=others) for d in _phrases(detectors, ramp_tests) if d in _WHAT]
    detected = "Detected as " + "; ".join(what) + "." if what else ""
    if band_high is not None:
        usual = f"the lane's usual range for a single month (up to {money(band_high, currency)})"
        reasons = [_CARRIED[c].format(count=observed_count, expected_count=baseline_count or 0.0)
                   for c in carried_by if c in _CARRIED and (c != "count" or baseline_count is not None)]
        if "value" in carried_by:
            sentences.append(f"That is above {usual}.")
        elif reasons:
            sentences.append(f"That alone is within {usual}; what stands out is {_and(reasons)}.")
        elif what:
            sentences.append(f"That alone is within {usual}; it was detected as {'; '.join(what)}.")
            detected = ""
        else:
            sentences.append(f"That alone is within {usual}.")
    if p_value is not None and p_value < 1e-6:
        sentences.append("A change this large is far beyond the lane's usual variation (p < 1e-6).")
    elif p_value is not None and p_value < 0.01:
        sentences.append(f"A change this large would arise by chance about once in {1 / p_value:,.0f} months (p = {p_value:.0e}).")
    if detected:
        sentences.append(detected)
    if destination_ratio is not None and "diversion" in detectors:
        sentences.append(
            f"Over the last months {reporter}'s exports of this code to {destinations} fell to "
            f"{destination_ratio:.0%} of their usual level."
        )
    if destination_before is not None and destination_after is not None and "diversion" in detectors:
        sentences.append(
            f"The collapsed lane to {destinations} went from {money(destination_before, currency)} a month "
            f"(its usual level) to {money(destination_after, currency)} a month over the last months."
        )
    if new_consignees:
        sentences.append(new_consignees_text(
            reporter=reporter, count=new_consignees, months=new_consignees_months or 1,
            observed_months=new_consignees_observed, named=new_consignees_named,
            expected=new_consignees_expected, currency=currency,
        ))
    if top_exporters and observed_value > 0:
        sentences.append(exporters_text(top_exporters, exporters, observed_value, currency))
    if early:
        sentences.append("This is an early alert: the month is still in progress.")
    return " ".join(sentences)


def case_text(
    *,
    key: SeriesKey,
    period: str,
    event: str,
    note: str,
    onset: str,
    months: int,
    observed_value: float,
    level: float,
    ratio: float | None,
    excess: float,
    peak_period: str,
    peak_ratio: float | None,
    detectors: tuple[str, ...],
    fired: bool,
    currency: str,
    expected: float | None = None,
    band: float | None = None,
    quiet: int = 0,
    close_after: int = 0,
) -> str:
    """What a case update says about the case: its onset, how far it has gone, whether it goes on.

    With ``fired`` (a detector alerted this month) it follows :func:`explain`;
    otherwise it is the record's whole explanation, against the case's frozen
    level and ``band`` (the top of the lane's usual month before the case). When
    the month's ``expected`` value (the level with the lane's seasonal pattern)
    differs from the level, the opening says how the two relate. A month that is no
    longer hot says how many such months in a row (``quiet``) close the case
    (``close_after``).

    Examples
    --------
    >>> k = SeriesKey("DE", "KG", "export", "TOTAL")
    >>> print(case_text(key=k, period="2022-03", event="opened", note="", onset="2022-03", months=1,
    ...     observed_value=2.4e7, level=4.5e6, ratio=5.33, excess=1.95e7, peak_period="2022-03",
    ...     peak_ratio=5.33, detectors=("seasonal_surge",), fired=True, currency="EUR"))
    A case opens on this lane: its pre-case level, EUR 4.50m a month, stays its baseline until the case closes.
    >>> print(case_text(key=k, period="2022-03", event="opened", note="", onset="2022-03", months=1,
    ...     observed_value=2.4e7, level=4.5e6, ratio=5.33, excess=1.95e7, peak_period="2022-03",
    ...     peak_ratio=5.33, detectors=("seasonal_surge",), fired=True, currency="EUR", expected=3.9e6))
    A case opens on this lane: its pre-case level, EUR 4.50m a month (the expected EUR 3.90m is that level with the lane's seasonal pattern for 2022-03), stays its baseline until the case closes.
    >>> print(case_text(key=k, period="2022-12", event="updated", note="", onset="2022-03", months=10,
    ...     observed_value=4.2e7, level=4.5e6, ratio=9.33, excess=2.9e8, peak_period="2022-10",
    ...     peak_ratio=16.2, detectors=("seasonal_surge", "ramp"), fired=False, currency="EUR", band=9e6))
    Germany's exports to Kyrgyzstan of HS TOTAL were EUR 42.00m in 2022-12, 9.3 times the lane's pre-case level of EUR 4.50m a month, above its usual range for a single month before the case (up to EUR 9.00m). Case open since 2022-03 (month 10): EUR 290.00m above that level since the onset, peak 16.2 times that level in 2022-10; detected so far by seasonal_surge, ramp. No detector alerted this month, but the lane is still materially above its pre-case level: the case stays open.
    >>> print(case_text(key=k, period="2023-01", event="updated", note="", onset="2022-03", months=11,
    ...     observed_value=5e6, level=4.5e6, ratio=1.11, excess=2.9e8, peak_period="2022-10",
    ...     peak_ratio=16.2, detectors=("seasonal_surge", "ramp"), fired=False, currency="EUR", band=9e6,
    ...     quiet=1, close_after=3).split(". ")[-1])
    No detector alerted this month and the lane is no longer materially above its pre-case level: the case closes after 3 such months in a row (1 so far).
    """
    if event == "opened":
        seasonal = ""
        if expected is not None and money(expected, currency) != money(level, currency):
            seasonal = (f" (the expected {money(expected, currency)} is that level with the lane's seasonal "
                        f"pattern for {period})")
        return (f"A case opens on this lane: its pre-case level, {money(level, currency)} a month{seasonal}, "
                "stays its baseline until the case closes.")
    sentences = []
    if not fired:
        goods = chpl().get(key.hs6)
        label = f"HS {key.hs6}" + (f" ({goods.description[:48].rstrip(' ,;')}"
                                   f"{'...' if len(goods.description) > 48 else ''}; CHPL tier {goods.tier})"
                                   if goods is not None else "")
        against = (f"{ratio:.1f} times the lane's pre-case level of {money(level, currency)} a month"
                   if ratio is not None else f"against a pre-case level of {money(level, currency)} a month")
        if band is not None:
            where = "above" if observed_value > band else "within"
            against += f", {where} its usual range for a single month before the case (up to {money(band, currency)})"
        sentences.append(f"{country_name(key.reporter)}'s {key.flow}s to {country_name(key.partner)} of {label} "
                         f"were {money(observed_value, currency)} in {period}, {against}.")
    peak = (f", peak {peak_ratio:.1f} times that level in {peak_period}" if peak_ratio is not None
            else f", peak in {peak_period}")
    so_far = f"; detected so far by {', '.join(detectors)}" if detectors else ""
    that = "that level" if not fired else f"its pre-case level of {money(level, currency)} a month"
    sentences.append(f"Case open since {onset} (month {months}): {money(excess, currency)} above {that} "
                     f"since the onset{peak}{so_far}.")
    if event == "escalated":
        sentences.append("The case escalates: its severity or its excess rose well past what was last notified.")
    if event == "closed":
        sentences.append(f"The case is {note}." if note else "The case is closed.")
    elif not fired and quiet and close_after:
        sentences.append(f"No detector alerted this month and the lane is no longer materially above its pre-case "
                         f"level: the case closes after {close_after} such months in a row ({quiet} so far).")
    elif not fired:
        sentences.append("No detector alerted this month, but the lane is still materially above its pre-case "
                         "level: the case stays open.")
    return " ".join(sentences)
