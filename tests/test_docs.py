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


# ------------------------------------------------------------------ the site in a real browser
FIGURES = {"getting-started": [], "cli": ["show-nmnist-t4-7-00016.png"], "SIMULATION": ["simulator-real-vs-simulated.png"],
           "results": ["time_to_decision.png"]}


@pytest.fixture(scope="module")
def served(site):
    """The built site over http on 127.0.0.1 (search loads its index with fetch, which file:// refuses)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from browser import Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium here (.ci/run installs Debian's chromium package): the site is not opened in a browser")
    with Browser(executable) as b:
        yield b


def test_every_page_loads_in_a_browser_without_console_errors_and_its_figures_show(served, browser):
    nav = re.findall(r":\s+([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    for page in nav:
        path = "" if page == "index.md" else page[:-3] + "/"
        browser.errors.clear()
        browser.open(f"{served}/{path}")
        assert browser.errors == [], (page, browser.errors)
        images = browser.evaluate("Array.from(document.images).map(i => [i.src, i.complete && i.naturalWidth > 0])")
        assert all(ok for _, ok in images), (page, images)
        for figure in FIGURES.get(page[:-3].split("/")[-1], []):
            assert any(src.endswith(figure) for src, _ in images), (page, figure)
    assert sum(len(f) for f in FIGURES.values()) == 3


def test_navigation_and_search_work_in_a_browser(served, browser):
    browser.open(f"{served}/")
    browser.loaded = False
    browser.evaluate("setTimeout(() => document.querySelector('a.md-nav__link[href$=\"zoo/\"]').click(), 0)")
    browser.wait(lambda: browser.loaded, "the zoo page to load after a click")
    browser.until("location.pathname === '/zoo/' && document.readyState === 'complete' && "
                  "!!document.querySelector('article')", "the zoo page after a click")
    assert "nmnist-t4" in browser.evaluate("document.querySelector('article').innerText")
    browser.evaluate("""(() => { const input = document.querySelector('.md-search__input');
        input.focus(); input.value = 'MultiThresholdLIF'; input.dispatchEvent(new Event('input', {bubbles: true})); })()""")
    found = browser.until("Array.from(document.querySelectorAll('.md-search-result__item a')).map(a => a.href)",
                          "search results")
    assert any("/reference/" in href for href in found), found
    assert browser.errors == [], browser.errors
