"""A citable release: one version number, the citation file and the changelog agree with it."""
from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml

import curvlib

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def test_version_is_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_curvlib_version_is_the_pyproject_version():
    assert curvlib.__version__ == VERSION


def test_curvlib_version_without_install_metadata(monkeypatch):
    """A source tree that was never installed still imports, with a version saying so."""
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", missing)
    try:
        assert importlib.reload(curvlib).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(curvlib)
    assert curvlib.__version__ == VERSION


def test_the_site_takes_its_edition_from_pyproject():
    sys.path.insert(0, str(ROOT / "tools"))
    from curvlib_book import book_version
    assert book_version() == VERSION


def test_citation_file_names_this_edition():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == VERSION
    assert cff["title"] == CONFIG["title"]
    assert cff["repository-code"] == CONFIG["repository"]["url"]
    assert cff["authors"] and all(a.get("name") or a.get("family-names") for a in cff["authors"])
    assert cff["license"] == tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"]["license"]["text"]


def test_changelog_has_an_entry_for_this_edition_with_its_changed_verdicts():
    text = (ROOT / "CHANGELOG.md").read_text()
    entries = re.split(r"^## ", text, flags=re.M)[1:]
    assert entries, "no edition in CHANGELOG.md"
    newest = entries[0]
    assert newest.split()[0] == VERSION, f"the newest entry is {newest.split()[0]}, not {VERSION}"
    for entry in entries:
        assert re.search(r"^### Changed verdicts$", entry, re.M), \
            f"entry {entry.split()[0]} has no 'Changed verdicts' section"
