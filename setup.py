"""The package list, found rather than typed (pyproject.toml holds everything else).

Every package under ``stc_zoo/`` is found, so a new subpackage cannot be left out of the wheel (one was:
``stc_zoo.sources``); ``kernels/`` lives at the top of the repository (docs/DESIGN.md) but installs as
``stc_zoo.kernels``, so it never shadows the unrelated PyPI package called ``kernels``. pyproject.toml
cannot say both (``packages.find`` maps folders to names one to one), hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["stc_zoo", "stc_zoo.*"]), "stc_zoo.kernels"],
    package_dir={"stc_zoo.kernels": "kernels"},
)
