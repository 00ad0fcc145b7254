"""Tables, charts and the results section of ``docs/detection.md`` for a detection run."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import scoring
from benchmarks.baselines import series_matrix

START_MARK, END_MARK = "<!-- results:start -->", "<!-- results:end -->"
COLUMNS = ("recall", "recall x4+", "F1", "precision", "FA/1000", "sparse FA/1000", "median delay",
           "decoys alerted", "ramp recall", "sparse recall")
BASELINE_PREFIXES = ("spreadsheet", "IsolationForest", "HalfSpaceTrees")
COMBINED = "transitwatch combined"


def _fmt(x: float, column: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if column in ("FA/1000", "sparse FA/1000"):
        return f"{x:.2f}"
    if column == "median delay":
        return f"{x:g}"
    return f"{x:.3f}"


def _cells(row) -> list[str]:
    values = row.score.as_row()
    return [_fmt(values[c], c) for c in COLUMNS]


def targets(run) -> list[tuple[str, str, bool]]:
    """The issue's targets for the labelled scenario: (input, target and value, met)."""
    out = []
    for kind in ("declarations", "monthly"):
        rows = {r.method: r for r in run.rows if r.input == kind}
        if COMBINED not in rows:
            continue
        s = rows[COMBINED].score
        best = max((r for r in rows.values() if r.method.startswith(BASELINE_PREFIXES)), key=lambda r: r.score.f1)
        checks = [
            (f"event F1 {s.f1:.3f} >= 0.90", s.f1 >= 0.90),
            (f"recall x4+ {s.recall_x4:.3f} >= 0.95", s.recall_x4 >= 0.95),
            (f"FA/1000 {s.fa_per_1000:.2f} <= 2", s.fa_per_1000 <= 2),
            (f"median delay {s.median_delay:g} <= 1", s.median_delay <= 1),
            (f"F1 {s.f1:.3f} >= 3x best baseline ({best.method}: {best.score.f1:.3f})",
             s.f1 >= 3 * best.score.f1),
            (f"sparse FA/1000 {s.sparse_fa_per_1000:.2f} <= 3", s.sparse_fa_per_1000 <= 3),
        ]
        out += [(kind, text, ok) for text, ok in checks]
    return out


def against_oracle(run) -> list[str]:
    """transitwatch combined set against the oracle rows (declarations), as sentences."""
    rows = {r.method: r.score for r in run.rows if r.input == "declarations"}
    tw, bound = rows.get(COMBINED), rows.get("oracle: true null model known")
    if tw is None or bound is None:
        return []
    out = [f"transitwatch combined (declarations) reaches {tw.f1 / bound.f1:.0%} of the oracle's event F1 "
           f"({tw.f1:.3f} against {bound.f1:.3f}) and {tw.recall_x4 / bound.recall_x4:.0%} of its recall x4+ "
           f"({tw.recall_x4:.3f} against {bound.recall_x4:.3f}), at {tw.fa_per_1000:.2f} false alarms per 1,000 "
           f"against the oracle's {bound.fa_per_1000:.2f}."]
    known, learned = rows.get("oracle, counts only"), rows.get("learned null: counts only")
    if known is not None and learned is not None:
        out.append(f"On the counts alone, learning each lane's expected count from its past instead of knowing it "
                   f"takes the oracle's event F1 from {known.f1:.3f} to {learned.f1:.3f}.")
    return out


def real_targets(real: dict[str, Any]) -> list[tuple[str, bool]]:
    h = real["headline"]
    am = real["by hub"].get("AM", {}).get("first 2022 alert")
    rate = h["alerts per 1,000 hub series-months 2021"]
    return [
        (f"hub lanes x3 and EUR 200k alerted in 2022: {h['surged lanes alerted in 2022']}/"
         f"{h['surged lanes (x3, >= EUR 200k)']} = {h['recall']:.3f} >= 0.90", h["recall"] >= 0.90),
        (f"2021 alerts per 1,000 hub series-months {rate} <= 3", rate <= 3),
        (f"first Armenia alert of 2022 in March or April: {am}", am in ("2022-03", "2022-04")),
    ]


def breakdowns(run, kind: str = "declarations") -> dict[str, dict]:
    """Recall of transitwatch combined by density, shape and size of surge."""
    row = next(r for r in run.rows if r.input == kind and r.method == COMBINED)

    def factor(s):
        return "x3-4" if s.factor < 4 else "x4-6" if s.factor < 6 else "x6-10" if s.factor < 10 else "x10+"

    groups = {"density": lambda s: s.density, "shape": lambda s: s.shape, "factor": factor,
              "coordinated": lambda s: "shared event_id" if _shared(run.truth).get(s.event_id, 1) > 1 else "alone"}
    return {name: scoring.recall_by(run.truth, row.alerts, g, first=run.first, last=run.last)
            for name, g in groups.items()}


def _shared(truth) -> dict:
    counts: dict = {}
    for s in truth.surges:
        counts[s.event_id] = counts.get(s.event_id, 0) + 1
    return counts


def print_run(run) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=240)
    table = Table(title=f"Detection quality, seed {run.args['seed']}, {len(run.truth.series)} hub series",
                  box=box.SIMPLE_HEAD)
    for c in ("method", "input", *COLUMNS, "s", "note"):
        table.add_column(c, justify="left" if c in ("method", "input", "note") else "right", no_wrap=True)
    for r in run.rows:
        table.add_row(r.method, r.input, *_cells(r), f"{r.seconds:.0f}", r.note)
    console.print(table)
    for kind, text, ok in targets(run):
        console.print(f"[{'green' if ok else 'red'}]{'met ' if ok else 'MISSED'}[/] {kind}: {text}")
    for text in against_oracle(run):
        console.print(text)
    for kind, counter in run.fa_by_detector.items():
        console.print(f"false alarms of transitwatch combined by detector ({kind}): {dict(counter.most_common())}."
                      + _case_split(run, kind))
    for name, groups in breakdowns(run).items():
        console.print(f"recall by {name} (declarations): "
                      + ", ".join(f"{k} {f}/{n}" for k, (f, n) in groups.items()))
    if run.real:
        for text, ok in real_targets(run.real):
            console.print(f"[{'green' if ok else 'red'}]{'met ' if ok else 'MISSED'}[/] real data: {text}")
        for hub, v in run.real["by hub"].items():
            console.print(f"  {hub}: first 2022 alert {v['first 2022 alert']}, {v['lanes alerted 2022']} lanes, "
                          f"surged {v['surged lanes alerted']}/{v['surged lanes']}, 2021 alerts {v['alerts 2021']}")
        for name, v in run.real["variants"].items():
            console.print(f"  {name}: {v}")
    console.print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in run.timings.items()))


# -- charts ---------------------------------------------------------------------------------------

def charts(run, img_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    out = {}

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, kind in zip(axes, ("declarations", "monthly")):
        for name, points in run.curves.items():
            if name.endswith(kind):
                pts = sorted(p for p in points if p[0] > 0)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name.rsplit(",", 1)[0])
        for r in run.rows:
            # the oracle's decomposition rows share its false-alarm rate: only the bound is drawn
            if r.input == kind and not r.method.startswith(("HalfSpaceTrees", "spreadsheet", "oracle without", "oracle,", "learned")):
                ax.scatter(max(r.score.fa_per_1000, 0.05), r.score.recall, zorder=3,
                           marker="*" if r.method == COMBINED else "o", s=160 if r.method == COMBINED else 30)
                ax.annotate(r.method.replace("transitwatch ", "").replace("IsolationForest (features)", "IF")
                            .replace(": true null model known", " (bound)"),
                            (max(r.score.fa_per_1000, 0.05), r.score.recall), fontsize=7,
                            xytext=(4, 2), textcoords="offset points")
        ax.axvline(2.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_title(f"{kind} input")
        ax.set_xlabel("false alarms per 1,000 series-months (log)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("event recall (alert within 3 months of onset)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(img_dir / "detection_recall_vs_fa.png", dpi=110)
    plt.close(fig)
    out["recall vs false alarms"] = "detection_recall_vs_fa.png"

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, kind in enumerate(("declarations", "monthly")):
        row = next(r for r in run.rows if r.input == kind and r.method == COMBINED)
        counts = np.bincount(np.array(row.score.delays, dtype=int), minlength=3)[:3]
        ax.bar(np.arange(3) + (i - 0.5) * 0.4, counts, width=0.4, label=kind)
    ax.set_xticks(range(3))
    ax.set_xlabel("months from onset to first alert (found surges)")
    ax.set_ylabel("surged series")
    ax.set_title("transitwatch combined: detection delay")
    ax.legend()
    fig.tight_layout()
    fig.savefig(img_dir / "detection_delay.png", dpi=110)
    plt.close(fig)
    out["delay histogram"] = "detection_delay.png"

    example = _example(run)
    if example is not None:
        s, values, alerts = example
        months = np.arange(run.first, run.last + 1)
        fig, ax = plt.subplots(figsize=(10, 3.6))
        ax.plot(months, values, color="tab:blue", lw=1.2, label="value, declarations input")
        stop = run.last if s.end is None else s.end - 1
        ax.axvspan(s.onset - 0.5, stop + 0.5, color="tab:orange", alpha=0.15, label="surge window")
        hits = sorted(alerts)
        ax.scatter(hits, values[np.array(hits) - run.first], color="tab:red", zorder=3, label="alert")
        ax.axvline(run.first + scoring.WARMUP_MONTHS - 0.5, color="grey", ls=":", lw=0.8)
        ticks = months[::6]
        ax.set_xticks(ticks, [scoring.period_of(m) for m in ticks], rotation=45, fontsize=8)
        ax.set_title(f"{' '.join(s.key)}: {s.shape} x{s.factor:.1f} from {scoring.period_of(s.onset)} "
                     f"({s.density} lane)")
        ax.set_ylabel("value per month (USD)")
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(img_dir / "detection_example.png", dpi=110)
        plt.close(fig)
        out["example surged series"] = "detection_example.png"
    return out


def _example(run):
    row = next(r for r in run.rows if r.input == "declarations" and r.method == COMBINED)
    by_series: dict = {}
    for k, m in row.alerts:
        by_series.setdefault(k, set()).add(m)
    found = [s for s in run.truth.surges if s.onset >= run.first + scoring.WARMUP_MONTHS
             and any(0 <= m - s.onset <= scoring.MAX_DELAY for m in by_series.get(s.key, ()))]
    if not found:
        return None
    pick = sorted(found, key=lambda s: (s.density != "medium", s.shape != "step", s.onset > run.last - 9,
                                       abs(s.factor - 5), s.key))[0]
    values = series_matrix(run.cells["declarations"], [pick.key], run.first, run.last)[0]
    return pick, values, by_series[pick.key]


# -- the document ---------------------------------------------------------------------------------

def results_markdown(run, *, command: str, today: dt.date, images: dict[str, str], img_prefix: str) -> str:
    lines = [
        START_MARK,
        "## Results",
        "",
        f"Generated by `{command}` on {today.isoformat()} (seed {run.args['seed']}, "
        f"{len(run.truth.series)} hub series, {len(run.truth.surges)} surged series, "
        f"{len(run.truth.decoys)} decoys; evaluation months {scoring.period_of(run.first + scoring.WARMUP_MONTHS)} "
        f"to {scoring.period_of(run.last)}; {run.timings.get('total', 0):.0f} s on this machine). "
        "Do not edit this section by hand: the command rewrites it.",
        "",
        "| method | input | " + " | ".join(COLUMNS) + " | note |",
        "|---|---|" + "---:|" * len(COLUMNS) + "---|",
    ]
    for r in run.rows:
        name = f"**{r.method}**" if r.method == COMBINED else r.method
        lines.append(f"| {name} | {r.input} | " + " | ".join(_cells(r)) + f" | {r.note} |")
    lines += ["", "### Targets (labelled scenario, transitwatch combined)", ""]
    lines += [f"- {'met' if ok else '**missed**'} ({kind}): {text}" for kind, text, ok in targets(run)]
    lines += [f"- {text}" for text in against_oracle(run)]
    lines += ["", "### Where transitwatch combined errs", ""]
    for kind, counter in run.fa_by_detector.items():
        total = next(r.score.false_alarms for r in run.rows if r.input == kind and r.method == COMBINED)
        parts = ", ".join(f"{d} {n}" for d, n in counter.most_common())
        lines.append(f"- False alarms ({kind}): {total} distinct series-months; detectors that fired on them: {parts or 'none'}."
                     + _case_split(run, kind))
    for name, groups in breakdowns(run).items():
        lines.append(f"- Recall by {name} (declarations): "
                     + ", ".join(f"{k} {f}/{n}" for k, (f, n) in groups.items()) + ".")
    lines += ["", "### Charts", ""]
    lines += [f"![{title}]({img_prefix}{name})" for title, name in images.items()]
    if run.real:
        lines += ["", *_real_markdown(run.real)]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in run.timings.items()) + ".", END_MARK]
    return "\n".join(lines)


def _real_markdown(real: dict[str, Any]) -> list[str]:
    h = real["headline"]
    out = [
        "### Real data: Eurostat Comext CHPL exports of EU member states, 2020-01 to 2022-11",
        "",
        f"`{Path(str(real.get('path', ''))).name}`: {h['hub series']} hub lanes, transitwatch defaults "
        f"(base currency EUR; `watch.history_start` {h.get('history start', 'per goods group')}, the file's "
        "first month: Comext covers every declared lane from it, so a lane absent before had no trade).",
        "",
    ]
    out += [f"- {'met' if ok else '**missed**'}: {text}" for text, ok in real_targets(real)]
    out += ["", "| hub | first 2022 alert | published jump | lanes alerted 2022 | surged lanes alerted | "
            "alerts 2021 | alerts by month Jan-Nov 2022 | CHPL exports 2022 / 2021, Jan-Nov |",
            "|---|---|---|---:|---:|---:|---|---|"]
    for hub, v in real["by hub"].items():
        yoy = real["year on year"].get(hub)
        out.append(f"| {hub} | {v['first 2022 alert']} | {PUBLISHED_TEXT.get(hub, '')} | {v['lanes alerted 2022']} | "
                   f"{v['surged lanes alerted']}/{v['surged lanes']} | {v['alerts 2021']} | "
                   f"{' '.join(str(x) for x in v['alerts by month 2022'])} | "
                   f"{' '.join('-' if x is None else f'{x:g}' for x in yoy) if yoy else ''} |")
    ru = real["year on year"].get("RU")
    if ru:
        out.append(f"| RU (destination, never alerts) | - | {PUBLISHED_TEXT['RU']} | - | - | - | - | "
                   f"{' '.join('-' if x is None else f'{x:g}' for x in ru)} |")
    out += ["", "| variant on the real file | 2021 alerts per 1,000 hub series-months | surged lanes alerted | recall |",
            "|---|---:|---:|---:|",
            f"| transitwatch combined | {h['alerts per 1,000 hub series-months 2021']} | "
            f"{h['surged lanes alerted in 2022']} | {h['recall']} |"]
    for name, v in real["variants"].items():
        out.append(f"| {name} | {v['alerts per 1,000 hub series-months 2021']} | "
                   f"{v['surged lanes alerted in 2022']} | {v['recall']} |")
    out += ["", f"2021 alerts by detector: {h['2021 alerts by detector']}.", "",
            f"Missed surged lanes: {', '.join(h['missed lanes']) or 'none'}.", "",
            "<details><summary>First 2022 alert of every hub lane that alerted in 2022</summary>", "",
            "| lane | first alert |", "|---|---|"]
    out += [f"| {' '.join(lane)} | {m} |" for lane, m in real["first alert by lane 2022"].items()]
    out += ["", "</details>"]
    return out


PUBLISHED_TEXT = {"AM": "from 2022-03", "KG": "from 2022-05", "KZ": "from 2022-05", "RU": "halving from 2022-03"}


def _case_split(run, kind: str) -> str:
    """' N of them opened or reopened a case (X per 1,000 series-months), M were further months of
    a case already open.' for the combined row of ``kind`` ('' without the split)."""
    split = getattr(run, "fa_cases", {}).get(kind)
    row = next((r for r in run.rows if r.input == kind and r.method == COMBINED), None)
    if not split or row is None or not row.score.false_alarms:
        return ""
    new, more = split.get("new case", 0), split.get("in a case", 0)
    per = new / row.score.false_alarms * row.score.fa_per_1000
    return (f" {new} of them opened or reopened a case ({per:.2f} per 1,000 series-months), {more} were further"
            " months of a case already open in which a detector fired again.")


def write_doc(run, path: Path, *, command: str, today: dt.date) -> None:
    """Rewrite the results section of ``path`` (between the markers), keeping the text around it."""
    img_dir = path.parent / "img"
    images = charts(run, img_dir)
    section = results_markdown(run, command=command, today=today, images=images, img_prefix="img/")
    text = path.read_text("utf-8") if path.exists() else "# Detection quality\n\n"
    if START_MARK in text and END_MARK in text:
        text = re.sub(re.escape(START_MARK) + ".*?" + re.escape(END_MARK), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", "utf-8")
