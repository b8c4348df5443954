"""The Dockerfile's base image and pyproject's torch floor satisfy the torch that the installed transformers requires."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def torch_floor(requirements: list[str]) -> Version | None:
    """The lowest torch version that a list of requirement strings allows (its `>=`/`==`/`~=` bound)."""
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == "torch":
            bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
            return max(bounds) if bounds else None
    return None


def test_docker_base_image_and_pyproject_floor_satisfy_transformers_torch_requirement():
    needed = torch_floor(metadata.requires("transformers") or [])
    assert needed is not None, "the installed transformers declares no torch requirement"

    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+pytorch/pytorch:(\d+\.\d+(?:\.\d+)?)-", dockerfile, re.M)
    assert base, "Dockerfile: expected a `FROM pytorch/pytorch:<torch version>-cuda...` base image"
    assert Version(base.group(1)) >= needed, (
        f"Dockerfile base image has torch {base.group(1)}; transformers {metadata.version('transformers')} needs >= {needed}"
    )

    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floor = torch_floor(dependencies)
    assert floor is not None and floor >= needed, (
        f"pyproject.toml allows torch {floor}; transformers {metadata.version('transformers')} needs >= {needed}"
    )
