"""The notifier's docstring examples run here (``testpaths`` does not collect ``streams/``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import transitwatch.streams.notify

MODULES = sorted(m.name for m in pkgutil.iter_modules(transitwatch.streams.notify.__path__, "transitwatch.streams.notify."))


def test_every_module_is_covered():
    assert {"transitwatch.streams.notify.router", "transitwatch.streams.notify.config", "transitwatch.streams.notify.matchers"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
