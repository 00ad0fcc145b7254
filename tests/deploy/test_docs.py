"""The deployment documentation says what the files do: every variable, image and procedure."""

from __future__ import annotations

import re

from tests.deploy.tools import COMPOSE, DEPLOY, OPERATIONS, ROOT, load_yaml

DEPLOY_README = DEPLOY / "README.md"


def test_every_compose_variable_is_documented():
    doc = DEPLOY_README.read_text("utf-8")
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text("utf-8")))
    assert len(names) > 30
    missing = sorted(n for n in names if f"`{n}`" not in doc and not re.search(rf"`{n}`,|, `{n}`", doc))
    assert not missing, f"deploy/README.md does not explain {missing}"


def test_the_image_table_matches_the_compose_file():
    doc = DEPLOY_README.read_text("utf-8")
    for name, svc in load_yaml(COMPOSE)["services"].items():
        if svc["image"].startswith("${"):
            continue
        assert f"| `{name}` | `{svc['image']}` |" in doc, f"deploy/README.md shows another image for {name}"


def test_the_entrypoint_s_settings_and_secret_files_are_documented():
    doc = DEPLOY_README.read_text("utf-8")
    script = (DEPLOY / "alertmanager" / "entrypoint.sh").read_text("utf-8")
    for name in set(re.findall(r"^check (ALERTMANAGER_\w+)", script, re.M)) - {"ALERTMANAGER_SECRETS_DIR"}:
        assert f"`{name}`" in doc, name
    for name in re.findall(r"secret (ALERTMANAGER_\w+)\)", script):
        assert f"`{name}`" in doc and f"`{name}_FILE`" in doc, name


def test_the_runbook_covers_the_procedures():
    doc = OPERATIONS.read_text("utf-8")
    for heading in ("## Scaling out workers", "### Changing the partition count", "## Replaying a period",
                    "## Rotating secrets", "## Routing, grouping and inhibition"):
        assert heading in doc, heading
    for anchor in re.findall(r"\]\(#([\w-]+)\)", doc):
        title = anchor.replace("-", " ")
        assert re.search(rf"^#+ {re.escape(title)}$", doc, re.M | re.I), f"broken link #{anchor}"


def test_the_readme_points_at_the_deployment():
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "## Deploy with Docker Compose" in readme
    assert "deploy/README.md" in readme and "docs/operations.md" in readme
