"""What ``pip install`` gets: the sdist and the wheel hold every module and data file of the package.

A subpackage missing from pyproject's hand-written list once left ``stc_zoo.sources`` out of the wheel
(``stc-zoo stream`` died with ModuleNotFoundError after a normal install). The package's files are
read from the source tree (git's list where there is one), so a new folder is checked without
editing this test; the archives are built with setuptools' own PEP 517 hooks, in a copy of the tree
(no build isolation: nothing is downloaded).
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folders and the names they install under (kernels/ installs as stc_zoo.kernels).
INSTALLED_AS = {"stc_zoo": "stc_zoo", "kernels": "stc_zoo/kernels"}
NOT_PACKAGE = {"kernels/BENCHMARKS.md"}  # documentation kept beside the kernels, not read at run time


def source_files() -> list[str]:
    """The package's files in the source tree, relative to the root (tracked and new, never ignored)."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *INSTALLED_AS], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split("\n")
        files = [f for f in listed if f and (ROOT / f).is_file()]
    else:
        files = [str(p.relative_to(ROOT)) for top in INSTALLED_AS for p in (ROOT / top).rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return sorted(f for f in files if f not in NOT_PACKAGE)


def installed_name(path: str) -> str:
    top, _, rest = path.partition("/")
    return f"{INSTALLED_AS[top]}/{rest}"


def build(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 ``hook`` (build_sdist or build_wheel) in ``source``; the archive made."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta; "
                           f"print(build_meta.{hook}({str(out)!r}))"], cwd=source, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, list[str]]:
    """The member names of the sdist, the wheel built from the tree, and the wheel built from the sdist."""
    tmp = tmp_path_factory.mktemp("packaging")
    tree = tmp / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv", "runs", ".cache", "__pycache__",
                                                               "*.egg-info", "build", "dist", ".gpu", "site"))
    sdist = build("build_sdist", tree, tmp / "dist")
    wheel = build("build_wheel", tree, tmp / "dist")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        in_sdist = [n.partition("/")[2] for n in tar.getnames()]
        tar.extractall(tmp / "unpacked", filter="data")
    wheel_of_sdist = build("build_wheel", tmp / "unpacked" / top, tmp / "from-sdist")
    return {"sdist": in_sdist, "wheel": zipfile.ZipFile(wheel).namelist(),
            "wheel built from the sdist": zipfile.ZipFile(wheel_of_sdist).namelist()}


def test_the_source_tree_lists_what_the_archives_must_hold():
    files = source_files()
    assert "stc_zoo/sources/udp.py" in files and "kernels/snn_numba.py" in files
    assert "stc_zoo/weights/nmnist-t4/model.safetensors" in files


@pytest.mark.parametrize("kind", ["sdist", "wheel", "wheel built from the sdist"])
def test_every_module_and_data_file_of_the_package_is_in_the_archive(archives, kind):
    members = set(archives[kind])
    wanted = source_files() if kind == "sdist" else [installed_name(f) for f in source_files()]
    missing = [f for f in wanted if f not in members]
    assert not missing, f"the {kind} lacks {len(missing)} file(s) of the package: {missing[:20]}"


def test_the_wheel_holds_no_stray_top_level_package(archives):
    """kernels/ must install as stc_zoo.kernels only: a top-level ``kernels`` would shadow the PyPI package."""
    tops = {n.split("/")[0] for n in archives["wheel"]}
    assert tops == {"stc_zoo", next(t for t in tops if t.endswith(".dist-info"))}, tops


def test_one_version_number():
    """The package metadata's version is what ``stc_zoo.__version__`` and ``stc-zoo --version`` say."""
    from importlib.metadata import version

    import stc_zoo

    done = subprocess.run([sys.executable, "-m", "stc_zoo.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert stc_zoo.__version__ == version("stc-zoo")
    assert done.stdout.strip() == f"stc-zoo {version('stc-zoo')}"


def test_the_citation_file_names_the_paper_and_this_version():
    """CITATION.cff (GitHub's "Cite this repository") cites the method's paper and the package at its version."""
    import yaml
    from importlib.metadata import version

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == version("stc-zoo")
    assert "2203.10006" in str(cff["preferred-citation"]["identifiers"])
