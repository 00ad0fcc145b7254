"""Alert records for the desk's tests: the fields of ``docs/alerts.md`` that the desk reads."""

from __future__ import annotations

from typing import Any

_n = 0


def record(**changes: Any) -> dict[str, Any]:
    global _n
    _n += 1
    base: dict[str, Any] = {
        "alert_id": f"tw-{_n}", "series_id": "DE>KG export 854231", "reporter": "DE", "partner": "KG",
        "flow": "export", "hs6": "854231", "hs_description": "Processors and controllers", "chpl_tier": "1",
        "period": "2022-05", "detectors": ["seasonal_surge"], "severity": "medium", "confidence": "medium",
        "observed_value": 400000.0, "baseline_value": 50000.0, "observed_count": None, "baseline_count": None,
        "ratio": 8.0, "currency": "EUR", "top_exporters": [], "top_consignees": [], "corroborating_reporters": [],
        "early": False, "explanation": "Germany's exports to Kyrgyzstan rose.",
        "evidence": {"band_high": 80000.0}, "banned_since": "2022-02-26", "banned_by": "EU 833/2014",
        "months_since_ban": 3, "case_id": "twc-a", "case_severity": "medium", "case_status": "open",
        "case_event": "opened", "case_onset": "2022-05", "case_months": 1, "case_peak_ratio": 8.0,
        "case_excess": 350000.0, "case_detectors": ["seasonal_surge"], "case_note": "",
    }
    base.update(changes)
    return base
