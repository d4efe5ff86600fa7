"""The package-dir mapping in pyproject.toml must list every package we ship.

A non-editable install (pip install .) only installs listed packages, so a new
subpackage that is missing from the list works in a checkout and breaks for
users. This compares the list with the directories on disk.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    found = set()
    for pkg, rel in mapping.items():
        base = ROOT / rel
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if "__pycache__" in parts:
                continue
            found.add(".".join((pkg, *parts)) if parts else pkg)
    return found


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = _packages_on_disk()
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - on_disk == set(), "these are listed but have no __init__.py"


def test_top_level_dirs_install_under_the_jepsenlike_namespace():
    import jepsenlike.checkers
    import jepsenlike.models
    import jepsenlike.nemesis

    assert Path(jepsenlike.checkers.__file__).parent == ROOT / "checkers"
    assert Path(jepsenlike.models.__file__).parent == ROOT / "models"
    assert Path(jepsenlike.nemesis.__file__).parent == ROOT / "nemesis"
