"""The documentation site: `make docs` builds it strictly (a broken link, a missing reference or a page left
out of the build is an error), the zoo page is generated from the package, and the API reference covers every
public name. Its examples run in tests/test_readme.py with the README's."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import stc_zoo
from stc_zoo.zoo import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="make test installs the docs tools (the test extra); without them no site")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600, env={"NO_MKDOCS_2_WARNING": "1",
                                                                              "PATH": "/usr/bin:/bin"})
    assert build.returncode == 0, build.stderr[-4000:]
    assert "WARNING" not in build.stderr, build.stderr[-4000:]
    return out


def test_every_page_of_the_nav_is_built(site):
    nav = re.findall(r":\s+([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav) >= 20
    for page in nav:
        built = site / (page[:-3] + "/index.html" if page != "index.md" else "index.html")
        assert built.is_file(), page


def test_the_zoo_page_is_the_packages_table_with_each_bundled_card(site):
    html = (site / "zoo" / "index.html").read_text()
    for name, entry in REGISTRY.items():
        assert name in html
        if entry.bundled:
            card = (site / "cards" / name / "index.html").read_text()
            assert "Cost per decision" in card or "Results" in card
            assert f'href="../cards/{name}/"' in html
    assert "&lt;!-- zoo-table --&gt;" not in html and "<!-- zoo-table -->" not in html


def test_the_api_reference_covers_every_public_name(site):
    reference = (ROOT / "docs" / "reference.md").read_text()
    documented = set(re.findall(r"^::: ([\w.]+)$", reference, re.M))
    for name in stc_zoo.__all__:
        module = getattr(stc_zoo, name).__module__
        assert f"{module}.{name}" in documented or module in documented, name
    html = (site / "reference" / "index.html").read_text()
    for name in ("StcSNN", "MultiThresholdLIF", "StreamSession", "UdpSource", "EventFolder", "saccades"):
        assert f'id="stc_zoo.' in html and name in html, name


def test_the_readme_stays_a_front_page():
    assert len((ROOT / "README.md").read_bytes()) <= 12_000
