"""Hostile input through the command line, as an outside user (or a broken upstream system) sends it.

Every case of issue 13's table that a file can carry, run as ``transitwatch replay`` in a child
process with a deadline: a crash (a traceback, a signal), a hang (the deadline) or a silent loss
(``lines read`` not equal to accepted plus rejected, alerts that differ from the valid lines'
alone) is a failure. Peak memory (``ru_maxrss``) is measured in the child itself.

    python -m benchmarks.robustness --write-doc docs/robustness.md

The worker's and the notifier's cases need a broker and are integration tests
(``tests/integration/test_worker_faults.py``, ``tests/integration/test_notify_*.py``);
``docs/operations.md`` says what the service promises.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benchmarks.scenarios.declarations import write

__all__ = ["Case", "Outcome", "cases", "clean_lines", "run_replay", "summary_rows"]

DEADLINE = 300.0
_CHILD = (
    "import resource, sys\n"
    "from transitwatch.streams.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)
STAT = b'{"period": "%s", "reporter": "DE", "partner": "KG", "hs_code": "854231", "value": 5000000}'
DECL = (b'{"declaration_id": "hostile-%d", "date": "%s", "reporter": "DE", "partner": "KG",'
        b' "hs_code": "854231", "value": 9000000, "consignee": "Shell LLC"}')


@dataclass
class Outcome:
    """What one run of ``transitwatch replay`` did."""

    code: int
    seconds: float
    maxrss_mib: float | None
    stdout: str
    stderr: str
    alerts: list[dict] = field(default_factory=list)
    rejects: Counter[str] = field(default_factory=Counter)
    reject_lines: list[int] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return self.code < 0 or "Traceback" in self.stderr

    @property
    def summary(self) -> dict[str, str]:
        return summary_rows(self.stdout)


def summary_rows(stdout: str) -> dict[str, str]:
    """The rows of the summary table ``transitwatch replay`` prints."""
    rows = {}
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split("│")]
        if len(parts) >= 4 and parts[1]:
            rows[parts[1]] = parts[2]
    return rows


def run_replay(argv: list[str], cwd: Path, *, deadline: float = DEADLINE, outputs: bool = True) -> Outcome:
    """``transitwatch replay ARGV --quiet --final-month closed`` in a child process.

    With ``outputs``, alerts and rejects go to files in ``cwd`` and are read back.
    A run past ``deadline`` is killed and reported with code ``-9`` and ``hang`` in stderr."""
    alerts, rejects = cwd / "run.alerts.jsonl", cwd / "run.rejects.jsonl"
    for path in (alerts, rejects):
        path.unlink(missing_ok=True)
    extra = ["--alerts-out", str(alerts), "--rejects-out", str(rejects)] if outputs else []
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, "replay", *argv, *extra, "--quiet",
                               "--final-month", "closed"], capture_output=True, text=True, timeout=deadline, cwd=cwd)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out, err = -9, str(exc.stdout or ""), f"hang: no end within {deadline:.0f} s"
    seconds = time.perf_counter() - started
    rss = [int(line.split()[1]) / 1024 for line in err.splitlines() if line.startswith("MAXRSS")]
    outcome = Outcome(code, seconds, rss[0] if rss else None, out, err)
    if alerts.exists():
        outcome.alerts = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    if rejects.exists():
        rows = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
        outcome.rejects = Counter(r["reason"] for r in rows)
        outcome.reject_lines = [r["line"] for r in rows]
    return outcome


def clean_lines(folder: Path, lines: int = 3000, seed: int = 3) -> list[bytes]:
    """Valid declaration lines (two years, with surges) from the declarations generator."""
    path = folder / f"clean-{lines}-{seed}.jsonl"
    if not path.exists():
        write(path, lines, seed, "2021-01", 24)
    return path.read_bytes().splitlines(keepends=True)


def spread(lines: list[bytes], hostile: list[bytes]) -> bytes:
    """The valid lines with the hostile ones spread evenly among them."""
    out = list(lines)
    for k, line in enumerate(hostile):
        out.insert((k + 1) * len(lines) // (len(hostile) + 1) + k, line.rstrip(b"\n") + b"\n")
    return b"".join(out)


def as_csv(lines: list[bytes]) -> list[str]:
    """JSON lines as CSV rows (a header first)."""
    rows = [orjson.loads(line) for line in lines]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().splitlines(keepends=True)


def stray_quote(rows: list[str], at: int) -> list[str]:
    """A quote opened at the start of a cell of row ``at`` and never closed."""
    out = list(rows)
    out[at] = out[at].replace(",DE,", ',"DE,', 1) if ",DE," in out[at] else '"' + out[at]
    return out


def fuzzed(rng: random.Random, valid: list[bytes]) -> bytes:
    """One hostile JSON line: a mutation of a valid one, or garbage."""
    base = rng.choice(valid).rstrip(b"\n")
    kind = rng.randrange(8)
    if kind == 0:
        return b"#" + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b" ")
    if kind == 1:
        cut = rng.randrange(1, len(base))
        return base[:cut]
    if kind == 2:
        return base.replace(b'"value":', b'"value":-', 1)
    if kind == 3:
        return base.replace(b'"date":"20', b'"date":"99', 1).replace(b'"date": "20', b'"date": "99', 1) \
            if b'"date' in base else b"{}"
    if kind == 4:
        return b"[" * rng.randrange(40, 5000) + b"]" * rng.randrange(40, 5000)
    if kind == 5:
        return base.replace(b'"reporter":"', b'"reporter":"Q', 1)
    if kind == 6:
        return b'{"declaration_id": null, "period": "' + str(rng.randrange(10000)).zfill(4).encode() + b'-01"}'
    return base.replace(b'"declaration_id":"', b'"declaration_id":1e999,"was":"', 1)


@dataclass
class Case:
    """One row of the table: what is sent, and what must come out."""

    name: str
    sent: str
    build: Callable[[Path, list[bytes]], tuple[list[str], dict]]


def _jsonl(folder: Path, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


def cases(huge_mib: int = 1024) -> list[Case]:
    """The cases; ``huge_mib`` sizes the one-huge-line case."""

    def periods(folder, lines):
        hostile = [STAT % b"0000-01", STAT % b"9999-12"]
        return [_jsonl(folder, "periods.jsonl", spread(lines, hostile))], {"date_out_of_range": 2}

    def dates(folder, lines):
        hostile = [DECL % (1, b"9999-12-31"), DECL % (2, b"0001-01-01")]
        return [_jsonl(folder, "dates.jsonl", spread(lines, hostile))], {"date_out_of_range": 2}

    def deep(folder, lines):
        hostile = [b'{"period": "2022-01", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"]
        return [_jsonl(folder, "deep.jsonl", spread(lines, hostile))], {"too_deep": 1}

    def quote(folder, lines):
        rows = as_csv(lines)
        rows = rows + as_csv(lines[:600])[1:]  # 3,600 data rows, as measured
        path = folder / "quote.csv"
        path.write_text("".join(stray_quote(rows, len(rows) // 3)))
        return [str(path)], {"unclosed_quote": 1}

    def huge(folder, lines):
        path = folder / "huge.jsonl"
        with open(path, "wb") as out:
            half = len(lines) // 2
            out.write(b"".join(lines[:half]))
            out.write(b'{"declaration_id": "big", "date": "2022-01-05", "note": "')
            block = b"x" * (1 << 20)
            for _ in range(huge_mib):
                out.write(block)
            out.write(b'"}\n')
            out.write(b"".join(lines[half:]))
        return [str(path)], {"line_too_long": 1}

    def fuzz(folder, lines):
        rng = random.Random(13)
        valid = lines * 7  # about 20,000 valid lines
        hostile = [fuzzed(rng, lines) for _ in range(10_000)]
        return [_jsonl(folder, "fuzz.jsonl", spread(valid, hostile))], {"*": 10_000}

    return [
        Case("periods", 'statistics with period "0000-01" and "9999-12" among 3,000 valid lines', periods),
        Case("dates", "declarations dated 9999-12-31 and 0001-01-01 among 3,000 valid lines", dates),
        Case("deep", "one JSON line nested 20,000 deep among 3,000 valid lines", deep),
        Case("quote", "a stray quote in a 3,600-row CSV file", quote),
        Case("huge", f"one line of {huge_mib:,} MiB among 3,000 valid lines", huge),
        Case("fuzz", "10,000 fuzzed lines among about 20,000 valid ones (duplicated ids included)", fuzz),
    ]


@dataclass
class Failing:
    """A command that must fail: its exit code, one clear line on stderr, no traceback."""

    sent: str
    code: int
    build: Callable[[Path, list[bytes]], list[str]]


def _csv_file(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def failing() -> list[Failing]:
    """The inputs and options a run cannot use."""
    header = "period,reporter,partner,hs_code,value\n"

    def empty(folder, lines):
        return ["replay", _csv_file(folder, "empty.jsonl", "")]

    def wrong_header(folder, lines):
        return ["replay", _csv_file(folder, "header.csv", "when,from,to,code,amount\n2024-01,DE,KZ,854231,5\n")]

    def semicolons(folder, lines):
        rows = "".join(f"2024-{m:02d};DE;KZ;854231;{1000 + m},5\n" for m in range(1, 13))
        return ["replay", _csv_file(folder, "semicolons.csv", header.replace(",", ";") + rows)]

    def decimal_commas(folder, lines):
        rows = "".join(f'2024-{m:02d},DE,KZ,854231,"{1000 + m},5"\n' for m in range(1, 13))
        return ["replay", _csv_file(folder, "decimal.csv", header + rows)]

    def missing_folder(folder, lines):
        return ["replay", _jsonl(folder, "clean.jsonl", b"".join(lines)), "--report", str(folder / "no" / "r.html")]

    def not_gzip(folder, lines):
        return ["replay", _jsonl(folder, "plain.jsonl.gz", b"".join(lines))]

    def bad_broker(folder, lines):
        return ["produce", _jsonl(folder, "clean.jsonl", b"".join(lines)), "--broker", "http://x"]

    def hubs_string(folder, lines):
        config = folder / "hubs.toml"
        config.write_text('[watch]\nhubs = "KG"\n')
        return ["replay", _jsonl(folder, "clean.jsonl", b"".join(lines)), "--config", str(config)]

    return [
        Failing("an empty file", 4, empty),
        Failing("a CSV file whose header names none of the contract's columns", 4, wrong_header),
        Failing("a semicolon-separated CSV file with decimal commas", 4, semicolons),
        Failing("a CSV file with decimal commas", 4, decimal_commas),
        Failing("`--report` into a missing folder", 2, missing_folder),
        Failing("a file named .gz that is not gzip", 2, not_gzip),
        Failing("`produce --broker http://x`", 2, bad_broker),
        Failing('`[watch] hubs = "KG"` (a string, not a list)', 2, hubs_string),
    ]


def run_failing(case: Failing, folder: Path, lines: list[bytes]) -> tuple[int, float, str, list[str]]:
    """Run one failing command; returns (exit code, seconds, its first stderr line, problems)."""
    argv = case.build(folder, lines)
    child = _CHILD.replace("rc = main(sys.argv[1:])", "rc = main(sys.argv[1:] + ['--quiet'] * (sys.argv[1] == 'replay'))")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", child, *argv], capture_output=True, text=True, timeout=DEADLINE,
                          cwd=folder)
    seconds = time.perf_counter() - started
    said = [line.replace(f"{folder}/", "") for line in proc.stderr.splitlines()
            if line.strip() and not line.startswith("MAXRSS")]
    problems = []
    if proc.returncode != case.code:
        problems.append(f"exit code {proc.returncode}, expected {case.code}")
    if "Traceback" in proc.stderr:
        problems.append("a traceback")
    if not said:
        problems.append("nothing said")
    return proc.returncode, seconds, said[0] if said else "", problems


def check(case: Case, folder: Path, lines: list[bytes], expected_alerts: list[dict]) -> tuple[Outcome, list[str]]:
    """Run one case; returns its outcome and what went wrong (empty: nothing)."""
    inputs, rejects = case.build(folder, lines)
    outcome = run_replay(inputs, folder)
    problems = []
    if outcome.crashed:
        problems.append(f"crashed (code {outcome.code}): {outcome.stderr[-300:]}")
    elif outcome.code != 0:
        problems.append(f"exit code {outcome.code}: {outcome.stderr[-300:]}")
    summary = outcome.summary
    read = int(summary.get("lines read", "-1").replace(",", ""))
    accepted = int(summary.get("records accepted", "-1").replace(",", ""))
    if read != accepted + sum(outcome.rejects.values()):
        problems.append(f"lines read {read} != accepted {accepted} + rejected {sum(outcome.rejects.values())}")
    wanted = rejects.get("*")
    if wanted is not None and sum(outcome.rejects.values()) != wanted:
        problems.append(f"{sum(outcome.rejects.values())} rejects, {wanted} hostile lines sent")
    if wanted is None and dict(outcome.rejects) != rejects:
        problems.append(f"rejects {dict(outcome.rejects)}, expected {rejects}")
    if case.name != "quote" and outcome.alerts != expected_alerts:
        problems.append(f"{len(outcome.alerts)} alerts, {len(expected_alerts)} from the valid lines alone")
    return outcome, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--huge-mib", type=int, default=1024, help="size of the one huge line (MiB)")
    parser.add_argument("--write-doc", metavar="FILE.md", help="write the results as Markdown")
    parser.add_argument("--only", nargs="*", help="case names to run")
    args = parser.parse_args(argv)
    rows = []
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = clean_lines(folder)
        base = run_replay([_jsonl(folder, "clean.jsonl", b"".join(lines))], folder)
        expected = base.alerts
        base_rss = base.maxrss_mib
        print(f"clean: {len(lines):,} lines, {len(expected)} alerts, {base.seconds:.1f} s, "
              f"peak {base_rss:.0f} MiB", flush=True)
        for case in cases(args.huge_mib):
            if args.only and case.name not in args.only:
                continue
            outcome, problems = check(case, folder, lines, expected)
            failed += bool(problems)
            for path in folder.glob(f"{case.name}.*"):
                path.unlink()
            verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
            rejects = ", ".join(f"{k} {v:,}" for k, v in sorted(outcome.rejects.items())) or "none"
            rows.append((case.sent, outcome.code, f"{outcome.seconds:.1f}", f"{outcome.maxrss_mib or 0:.0f}",
                         rejects, verdict))
            print(f"{case.name}: exit {outcome.code}, {outcome.seconds:.1f} s, peak {outcome.maxrss_mib or 0:.0f} "
                  f"MiB, rejects: {rejects}; {verdict}", flush=True)
        errors = []
        for case in failing():
            if args.only and "failing" not in args.only:
                continue
            code, seconds, said, problems = run_failing(case, folder, lines)
            failed += bool(problems)
            verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
            errors.append((case.sent, code, f"{seconds:.1f}", said, verdict))
            print(f"{case.sent}: exit {code}, {seconds:.1f} s: {said}; {verdict}", flush=True)
    if args.write_doc:
        _write_doc(Path(args.write_doc), rows, errors, len(lines), len(expected), base_rss, argv)
    return 1 if failed else 0


def _write_doc(path: Path, rows: list[tuple], errors: list[tuple], clean: int, alerts: int, base_rss: float,
               argv: list[str] | None) -> None:
    command = "python -m benchmarks.robustness " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Hostile input through `transitwatch replay`",
        "",
        f"Written by `{command.strip()}`: each case runs `transitwatch replay` in a child process with a "
        f"deadline of {DEADLINE:.0f} s; exit code, wall seconds and peak memory (`ru_maxrss` of the child) "
        "as measured; `rejects` from the `--rejects-out` file. A case passes when nothing crashed or hung, "
        "every line read is accepted or rejected with its reason, and the alerts equal those of the valid "
        f"lines alone ({clean:,} declaration lines, {alerts} alerts, peak {base_rss:.0f} MiB on their own).",
        "",
        "| input | exit | seconds | peak MiB | rejects | outcome |",
        "|---|---:|---:|---:|---|---|",
    ]
    lines += [f"| {sent} | {code} | {secs} | {rss} | {rej} | {ok} |" for sent, code, secs, rss, rej, ok in rows]
    lines += [
        "",
        "The stray quote's case is not held to the valid lines' alerts: its one rejected row is a valid "
        "declaration that the quote broke.",
        "",
        "## Input and options a run cannot use",
        "",
        "Each must end with its exit code (2: cannot start or read; 4: unusable input, no alerts written) "
        "and one clear line, never a traceback and never an exit 0 that a scheduled job would read as "
        "\"no surges\". The line is the first the command wrote to stderr.",
        "",
        "| input or option | exit | seconds | what it said | outcome |",
        "|---|---:|---:|---|---|",
    ]
    lines += [f"| {sent} | {code} | {secs} | {said.replace('|', '/')} | {ok} |" for sent, code, secs, said, ok in errors]
    lines += [""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
