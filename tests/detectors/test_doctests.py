"""The docstring examples of :mod:`transitwatch.detectors` and :mod:`transitwatch` run here.

They are imported by their installed names (``transitwatch.detectors.x``), as a user imports them;
collecting ``detectors/`` by path would load a second copy of every module under another name.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import transitwatch
import transitwatch.detectors

MODULES = ["transitwatch", *sorted(m.name for m in pkgutil.iter_modules(transitwatch.detectors.__path__, "transitwatch.detectors."))]


def test_every_module_is_covered():
    assert {"transitwatch.detectors.policy", "transitwatch.detectors.contract", "transitwatch.detectors.cases"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
