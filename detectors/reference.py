"""Reference data shipped with the package: the Common High Priority List, the
transit countries and the HS6 nomenclature, each with its source (and, for the
lists that change with sanctions packages, the date it is valid from).

Lists change with sanctions packages, so they are versioned data files in
``detectors/data/``, never constants in code.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class HsCode:
    """One HS6 code of a watch-list."""

    hs6: str
    tier: str
    description: str
    valid_from: dt.date
    source: str


@dataclass(frozen=True, slots=True)
class Country:
    """A country watched as a possible transit hub, with the reason."""

    iso2: str
    iso3: str
    name: str
    valid_from: dt.date
    why: str
    source: str


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("transitwatch.detectors.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@cache
def chpl() -> dict[str, HsCode]:
    """The Common High Priority List (BIS/EU/UK/Japan, version of 2024-02-23).

    Examples
    --------
    >>> codes = chpl()
    >>> len(codes), codes["854231"].tier
    (50, '1')
    """
    return {
        r["hs6"]: HsCode(
            hs6=r["hs6"],
            tier=r["tier"],
            description=r["description"],
            valid_from=dt.date.fromisoformat(r["valid_from"]),
            source=r["source"],
        )
        for r in _rows("chpl_hs_codes.csv")
    }


@cache
def transit_countries() -> dict[str, Country]:
    """Countries named by public sources as transit points for goods bound for Russia.

    Examples
    --------
    >>> transit_countries()["KG"].name
    'Kyrgyzstan'
    """
    return {
        r["iso2"]: Country(
            iso2=r["iso2"],
            iso3=r["iso3"],
            name=r["name"],
            valid_from=dt.date.fromisoformat(r["valid_from"]),
            why=r["why"],
            source=r["source"],
        )
        for r in _rows("transit_countries.csv")
    }


@cache
def hs6_codes() -> dict[str, tuple[str, ...]]:
    """The HS6 subheadings of HS 2017 and HS 2022, each with the editions it is in.

    From UN Comtrade's HS lists as published by the datasets/harmonized-system data
    package (ODC Public Domain Dedication and Licence 1.0); Comtrade's chapter 99
    aggregate (``999999``, commodities not specified according to kind) is left out.
    ``detectors/data/SOURCES.md`` says how the file was made. A code of HS 2012 or
    earlier that HS 2017 deleted is not in it.

    Examples
    --------
    >>> codes = hs6_codes()
    >>> codes["854231"], codes["851712"], codes["851713"], "999999" in codes
    (('2017', '2022'), ('2017',), ('2022',), False)
    """
    return {r["hs6"]: tuple(r["editions"].split()) for r in _rows("hs6_codes.csv")}


@cache
def country_name(iso2: str) -> str:
    """A readable country name for an alpha-2 code, the code itself if unknown.

    Examples
    --------
    >>> country_name("AM"), country_name("ZZ")
    ('Armenia', 'ZZ')
    """
    known = transit_countries().get(iso2)
    if known is not None:
        return known.name
    import pycountry

    found = pycountry.countries.get(alpha_2=iso2)
    if found is None:
        return iso2
    return getattr(found, "common_name", None) or found.name
