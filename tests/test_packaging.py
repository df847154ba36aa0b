"""pyproject.toml installs every kernel folder's C++ sources as package data, declared as packages so that
`pip install` prints no setuptools warning per folder (issue 10)."""

from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_kernel_source_folder_is_a_declared_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    folders = {p.parent for p in (REPO / "kernels").rglob("*") if p.suffix in (".cpp", ".h", ".hpp")}
    missing = sorted(
        "tilegraph.kernels" + "".join("." + part for part in f.relative_to(REPO / "kernels").parts)
        for f in folders
    )
    missing = [m for m in missing if m not in packages]
    assert not missing, f"add to [tool.setuptools] packages: {missing}"
    assert set(config["package-data"]["*"]) >= {"*.cpp", "*.h", "*.hpp"}
