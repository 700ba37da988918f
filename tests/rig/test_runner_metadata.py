"""The run's metadata in results.json (issue 13, item 15): the tool's version when jointkit is not installed, and the
profile's identity. The end-to-end fields of a run are in tests/cli/test_run_integrity.py."""

from __future__ import annotations

import hashlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from firmware_iface.protocol.load import load_native
from firmware_iface.rig import runner

ROOT = Path(__file__).resolve().parents[2]


def _not_installed(name: str) -> str:
    raise importlib.metadata.PackageNotFoundError(name)


def test_the_version_of_a_source_tree_that_is_not_installed_is_its_pyprojects(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", _not_installed)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert runner.tool_version() == expected == "0.1.0"  # was "unknown"


@pytest.mark.parametrize("text", [None, "[project]\nname = 'x'\n", "not toml ["], ids=["absent", "no-version", "bad"])
def test_no_version_anywhere_is_unknown_not_an_error(monkeypatch, tmp_path, text):
    monkeypatch.setattr(importlib.metadata, "version", _not_installed)
    pyproject = tmp_path / "pyproject.toml"
    if text is not None:
        pyproject.write_text(text)
    assert runner.tool_version(pyproject) == "unknown"


def test_the_profile_identity_is_the_hash_of_its_dbc_and_sidecar_bytes():
    profile = load_native()
    identity = runner.profile_identity(profile)
    expected = hashlib.sha256(Path(profile.dbc_path).read_bytes() + Path(profile.sidecar.path).read_bytes())
    assert identity["name"] == "jointkit_native" and identity["sha256"] == expected.hexdigest()
