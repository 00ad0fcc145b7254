"""The shipped sample: real Eurostat Comext monthly exports of CHPL goods from the 27 EU member
states to Russia, Belarus and five hubs, 2020-01 to 2022-11, with its watch configuration (values
in euro). Package data, so ``transitwatch demo`` and ``transitwatch replay --sample`` work from
any install; its source, citation and caveats are in ``examples/README.md``.

Examples
--------
>>> SAMPLE.name, SAMPLE.is_file(), SAMPLE_CONFIG.is_file()
('eurostat_chpl_exports_2020_2022.jsonl.gz', True, True)
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The sample, monthly statistics lines (gzip-compressed JSON Lines).
SAMPLE = HERE / "eurostat_chpl_exports_2020_2022.jsonl.gz"
#: Its configuration: the sample's currency (EUR), first month and family size.
SAMPLE_CONFIG = HERE / "eurostat.toml"
