"""One source of the version: ``monai_mtt.__version__``.

pyproject.toml reads it (setuptools dynamic version) and the code imports it; the data files that must carry
a literal (the bundle's metadata.json, the Deploy app's app.yaml) are checked here, so a release that bumps
``monai_mtt/__init__.py`` alone fails this test until they agree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

import monai_mtt

REPO = Path(__file__).resolve().parents[1]
VERSION = monai_mtt.__version__


def test_version_is_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.post\d+)?(\.dev\d+)?", VERSION), VERSION


def test_pyproject_reads_the_package_version():
    text = (REPO / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dynamic = \["version"\]', project, re.MULTILINE), "pyproject's version must be dynamic"
    assert not re.search(r"^version\s*=", project, re.MULTILINE), "pyproject must not carry its own version literal"
    assert re.search(r'^version = \{ attr = "monai_mtt.__version__" \}', text, re.MULTILINE)


def test_bundle_metadata_carries_the_version():
    meta = json.loads((REPO / "bundle" / "configs" / "metadata.json").read_text())
    assert meta["version"] == VERSION
    assert VERSION in meta["changelog"]
    assert meta["required_packages_version"]["monai-mtt"] == VERSION


def test_deploy_app_yaml_carries_the_version():
    doc = yaml.safe_load((REPO / "monai_mtt" / "apps" / "deploy" / "app.yaml").read_text())
    assert str(doc["application"]["version"]) == VERSION


def test_no_other_python_source_writes_the_version():
    """Code imports ``monai_mtt.__version__``; a quoted copy of the version anywhere else in the package is a second source."""
    literal = re.compile(r"""["']""" + re.escape(VERSION) + r"""["']""")
    copies = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "monai_mtt").rglob("*.py"))
        if p != REPO / "monai_mtt" / "__init__.py" and literal.search(p.read_text())
    ]
    assert copies == []
    assert literal.search((REPO / "monai_mtt" / "__init__.py").read_text())
