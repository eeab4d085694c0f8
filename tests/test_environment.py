"""environment.yml (conda) and pyproject.toml (pip) must name the same packages."""

import re
import tomllib

import yaml
from conftest import ROOT

CONDA_TO_PIP = {"pytorch-cpu": "torch", "pytorch": "torch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(d) for d in project["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_names = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in conda} - {"python", "pip"}
    assert conda_names == pip_names, (
        f"only in environment.yml: {sorted(conda_names - pip_names)}; "
        f"only in pyproject.toml: {sorted(pip_names - conda_names)}"
    )
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert pip_section == ["-e ."], "students get the course, not the developer tools"
    assert "conda-forge" in env["channels"]


def test_every_environment_line_is_commented():
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.strip().startswith("- ") and "conda-forge" not in line:
            assert "#" in line, f"environment.yml line without a comment: {line!r}"


def test_torch_pinned_as_in_constraints():
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split()
                if "==" in line)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str) and _name(d) == "pytorch-cpu"]
    assert conda == [f"pytorch-cpu=={pins['torch']}"], conda
