"""MkDocs hook: the pages made from the package and the repository's other Markdown files at build time,
never typed by hand (mkdocs.yml: ``hooks``; this folder is excluded from the site).

- ``zoo.md``'s ``<!-- zoo-table -->`` becomes the table ``stc-zoo list`` prints (``stc_zoo.cli.zoo_rows``),
  with a link to each bundled model's card, and ``cards/<name>.md`` each card itself (its YAML head left out);
- ``results.md``, ``training-commands.md``, ``benchmarks-e2e.md``, ``benchmarks-kernels.md`` and ``hub.md`` are
  ``training/RESULTS.md``, ``training/README.md``, ``BENCHMARKS.md``, ``kernels/BENCHMARKS.md`` and
  ``hub/README.md``, their links into the repository rewritten to the site's pages and their figures copied.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
INCLUDED = {"results.md": "training/RESULTS.md", "training-commands.md": "training/README.md",
            "benchmarks-e2e.md": "BENCHMARKS.md", "benchmarks-kernels.md": "kernels/BENCHMARKS.md",
            "hub.md": "hub/README.md"}
# a repository path -> the site page that holds it (docs/ pages keep their names)
PAGES = {**{v: k for k, v in INCLUDED.items()}, "README.md": "index.md"}
FIGURES = {"training/time_to_decision.png": "figures/time_to_decision.png"}


def _site_target(source: str, target: str) -> str | None:
    """Where a link written in repository file ``source`` to ``target`` points on the site (None: leave it)."""
    if re.match(r"[a-z]+:", target) or target.startswith("#"):
        return None
    path, _, anchor = target.partition("#")
    resolved = (ROOT / Path(source).parent / path).resolve()
    try:
        rel = resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return None
    page = PAGES.get(rel) or FIGURES.get(rel) or (rel.removeprefix("docs/") if rel.startswith("docs/") else None)
    if page is None:
        return None
    return page + (f"#{anchor}" if anchor else "")


def relink(text: str, source: str) -> str:
    """``text`` of repository file ``source`` with its Markdown links and images pointing at site pages."""
    def fix(m: re.Match) -> str:
        target = _site_target(source, m.group(2))
        return m.group(0) if target is None else f"{m.group(1)}({target})"
    return re.sub(r"(!?\[[^\]]*\])\(([^)\s]+)\)", fix, text)


def _card_text(folder: Path) -> str:
    text = (folder / "README.md").read_text()
    if text.startswith("---\n"):  # the Hub's YAML head: the page shows the card as a reader sees it
        text = text.split("\n---\n", 1)[1]
    return text


def zoo_table() -> str:
    from stc_zoo.cli import zoo_rows
    from stc_zoo.zoo import REGISTRY

    lines = ["| name | dataset | T | input (sensor -> network) | parameters | trained | accuracy | split |",
             "|---|---|---|---|---|---|---|---|"]
    for row in zoo_rows():
        name = f"[`{row['name']}`](cards/{row['name']}.md)" if REGISTRY[row["name"]].bundled else f"`{row['name']}`"
        lines.append(f"| {name} | {row['dataset']} | {row['T']} | {row['input']} | {row['params']} | {row['trained']} "
                     f"| {row['accuracy']} | {row['split']} |")
    return "\n".join(lines)


def on_files(files, config):
    from stc_zoo.zoo import REGISTRY

    for page, source in INCLUDED.items():
        files.append(File.generated(config, page, content=relink((ROOT / source).read_text(), source)))
    for name, entry in REGISTRY.items():
        if entry.bundled:
            files.append(File.generated(config, f"cards/{name}.md", content=_card_text(entry.bundled)))
    for source, target in FIGURES.items():
        files.append(File.generated(config, target, abs_src_path=str(ROOT / source)))
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- zoo-table -->" in markdown:
        markdown = markdown.replace("<!-- zoo-table -->", zoo_table())
    return markdown
