"""Smoke test of the formats benchmark: the three files hold the same records, every format reads
all of them, and the document keeps what is above its results marker. Speed is not asserted here;
the numbers live in docs/input-formats.md."""

from __future__ import annotations

from benchmarks import formats


def test_a_small_run_reads_the_same_records_in_every_format(tmp_path):
    res = formats.run(lines=1500, seed=3, repeat=3, workdir=tmp_path)
    assert res["records"] == 1500
    assert all(len(res["times"][f]) == 3 and res["median"][f] > 0 for f in formats.FORMATS)
    assert res["ratio"]["jsonl"] == 1.0
    assert res["bytes"]["parquet"] < res["bytes"]["csv"] < res["bytes"]["jsonl"]

    doc = tmp_path / "formats.md"
    doc.write_text("# Formats\n\nnotes\n\n" + formats.MARKER + "\n\nold results\n")
    code = formats.main(["--lines", "1500", "--seed", "3", "--workdir", str(tmp_path), "--write-doc", str(doc)])
    text = doc.read_text()
    assert text.startswith("# Formats\n\nnotes\n\n") and "old results" not in text
    assert text.count(formats.MARKER) == 1 and "| csv |" in text and code in (0, 1)
