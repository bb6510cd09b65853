"""The README and the documentation site are executable: their Python examples run and print what
they show, and every command they show parses with the parser of the program it names (flags as
written); the commands whose inputs exist here run and print the lines shown.

The pages are README.md and the Markdown sources of the site (``docs/``, the pages mkdocs.yml builds);
the site's generated pages (the zoo table, the included repository files) hold no examples of their own.

Commands are the lines of its non-Python code blocks that start with ``.venv/bin/`` (after an
optional ``$ ``) and its inline code that does. A command runs when it names no placeholder (ROOT, DIR, PATH/TO, org/name) and
does not train or read a training run's output (``runs/...``), which would take the test minutes, nor listen
for a live sender (``stream --udp``: tests/test_sources.py runs it with one), nor recompute a card's cost on the
1,000 recordings (tests/test_metrics.py does, against the card).
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eventfiles import SUBSET
from stc_zoo import demo, train
from stc_zoo.cli import build_parser as cli_parser
from stc_zoo.hub.publish import build_parser as publish_parser

ROOT = Path(__file__).resolve().parents[1]
# The site's pages: README.md, docs/, and the repository files the site includes as pages (docs/_hooks/generate.py)
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_hooks" not in p.parts),
         *(ROOT / f for f in ("training/RESULTS.md", "training/README.md", "BENCHMARKS.md", "kernels/BENCHMARKS.md",
                              "hub/README.md"))]
TEXT = {page.relative_to(ROOT).as_posix(): page.read_text() for page in PAGES}
README = TEXT["README.md"]
BLOCKS = [block for text in TEXT.values() for block in re.findall(r"```(\w*)\n(.*?)```", text, re.S)]
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
PYTHON_IDS = [f"{name}-{i}" for name, text in TEXT.items()
              for i, _ in enumerate(c for lang, c in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if lang == "python")]
COMMANDS = list(dict.fromkeys(line.removeprefix("$ ").split("  #")[0].strip()
                              for lang, code in BLOCKS if lang != "python" for line in code.splitlines()
                              if line.removeprefix("$ ").startswith(".venv/bin/")))
INLINE = {c for text in TEXT.values() for c in re.findall(r"`(\.venv/bin/[^` ]+ [^`]+)`", text)}
COMMANDS += sorted(INLINE - set(COMMANDS))  # with arguments
PLACEHOLDERS = ("ROOT", "DIR", "PATH/TO", "org/name")


def env() -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_")}
    return {**clean, "HF_HUB_OFFLINE": "1"}


def script_parser(path: str):
    """The argument parser of a script that is not a module (``build_parser()`` in the file at ``path``)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def parse(argv: list[str]) -> None:
    """Parse ``argv`` (a README command, without .venv/bin/) with its program's own parser."""
    program, *args = argv
    if program == "stc-zoo" and args[:1] == ["train"]:
        train.parse_args(args[1:])
    elif program == "stc-zoo":
        cli_parser().parse_args(args)
    elif program == "torchrun":
        script = next(i for i, a in enumerate(args) if a.endswith(".py"))
        assert args[script] == "training/train.py"
        train.parse_args(args[script + 1:])
    elif program == "python":
        target, *rest = args
        if target == "-m":
            module, *rest = rest
            modules = {"stc_zoo.demo": demo.build_parser().parse_args, "stc_zoo.train": train.parse_args,
                       "pytest": lambda args: None}
            modules[module](rest)
            return
        scripts = {"training/train.py": train.parse_args, "hub/publish.py": publish_parser().parse_args}
        scripts.update({path: script_parser(path).parse_args for path in
                        ("training/cv.py", "training/time_to_decision.py", "benchmarks/e2e.py", "benchmarks/sparse_dense.py")})
        if target in scripts:
            scripts[target](rest)
        else:  # kernel scripts: they exist and answer --help
            assert (ROOT / target).is_file(), target
    elif program == "aestream":  # its own binary (make test installs it): the arguments test_sources.py runs
        assert args[:2] == ["input", "file"] and args[3:5] == ["output", "udp"], argv
        assert args[-2:] == ["--include-timestamp", "true"], argv
    else:
        raise AssertionError(f"README shows an unknown program: {argv}")


def runs_here(argv: list[str]) -> bool:
    text = " ".join(argv)
    return (argv[0] == "stc-zoo" and argv[1:2] != ["train"] and not any(p in text for p in PLACEHOLDERS)
            and not any(a.startswith("runs/") and a != "runs/figure.png" for a in argv)
            and ("../shared" not in text or SUBSET.is_dir())
            and not (argv[1:2] == ["stream"] and "--udp" in argv)  # waits for a sender: test_sources.py runs it with one
            # a card's cost recompute over 1,000 recordings: test_metrics.py runs that measurement against the card
            and not (argv[1:2] == ["profile"] and text == f"stc-zoo profile {argv[2]} --data ../shared/data/nmnist-subset"))


def test_the_readme_shows_python_examples_and_commands():
    readme = re.findall(r"```(\w*)\n(.*?)```", README, re.S)
    assert any(lang == "python" for lang, _ in readme) and sum(c.count(".venv/bin/") for _, c in readme) >= 2
    assert len(PYTHON) >= 5 and len(COMMANDS) >= 20 and len(PAGES) >= 15


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_parses_as_written(command):
    argv = shlex.split(command.removeprefix(".venv/bin/"))
    try:
        parse(argv)
    except SystemExit as exit_:
        pytest.fail(f"README command does not parse: {command} (exit {exit_.code})")


# ------------------------------------------------------------------ shown outputs come from the current code
def shown_outputs() -> list[tuple[str, list[str]]]:
    """``(command, output lines)`` of every ``$ `` prompt in the README's code blocks."""
    shown = []
    for lang, code in BLOCKS:
        if lang == "python":
            continue
        current = None  # the prompt whose output this block's lines are
        for line in code.splitlines():
            if line.startswith("$ "):
                current = (line[2:].split("  #")[0].strip(), [])
                shown.append(current)
            elif current is not None and line.strip():
                current[1].append(line)
    return shown


# A command whose output a page shows runs in the test of that output (below), once.
@pytest.mark.parametrize("command", [c for c in COMMANDS if runs_here(shlex.split(c.removeprefix(".venv/bin/")))
                                     and c not in {shown for shown, _ in shown_outputs()}])
def test_commands_whose_inputs_exist_run(command):
    argv = shlex.split(command)
    argv[0] = str(ROOT / argv[0])
    if argv[1:2] == ["bench"]:  # as written it times 5 rounds of 100 runs (a minute); a few show it works
        argv += ["--runs", "3", "--rounds", "1", "--warmup", "1"]
    out = subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"


LITERAL = re.compile(r"^([(\['\"\d-]|[A-Za-z_.]+\()")  # a repr: tensor([5]), Decision(...), [(6, '5')], (11, 1, 5)


def printed_as_shown(code: str) -> list[str]:
    """What the README says a block prints: the ``# ...`` comment of each ``print(...)`` line that shows a
    value (a repr, up to a ``: `` that explains it; ``...`` leaves out the rest of the line, or its start),
    not one that describes it in words."""
    shown = []
    for line in code.splitlines():
        if not (line.lstrip().startswith("print(") and "#" in line):
            continue
        text = line.split("#", 1)[1].strip()
        if text.startswith("..."):
            shown.append(text)
        elif LITERAL.match(text):
            shown.append(re.split(r"(?<=[)\]]): ", text)[0])
    return shown


def printed(line: str, shown: str) -> bool:
    if shown.startswith("..."):
        return line.endswith(shown[3:].strip())
    return line.startswith(shown.split("...")[0].rstrip(", "))


@pytest.mark.parametrize("index", range(len(PYTHON)), ids=PYTHON_IDS)
def test_python_examples_run_and_print_what_the_readme_shows(index):
    code = PYTHON[index]
    if "../shared" in code and not SUBSET.is_dir():
        pytest.skip("the example reads ../shared/data/nmnist-subset")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"README example {index} failed:\n{code}\n{out.stderr}"
    lines, position = out.stdout.splitlines(), 0
    for shown in printed_as_shown(code):  # in order, each on a line of its own
        found = next((k for k in range(position, len(lines)) if printed(lines[k], shown)), None)
        assert found is not None, f"README example {index} shows {shown!r}; it prints:\n{out.stdout}"
        position = found + 1


def test_the_readme_python_examples_show_what_they_print():
    """The check above reads the shown outputs from the comments: there must be some to check."""
    shown = [s for code in PYTHON for s in printed_as_shown(code)]
    assert "tensor([5])" in shown and "[(6, '5')]" in shown and any(s.startswith("Decision(") for s in shown)


def without_timings(line: str) -> str:
    """A line with its measured times replaced, which no rerun reproduces."""
    line = re.sub(r"(compute|warm-up:) \d+\.\d+ ms", r"\1 # ms", line)
    line = re.sub(r'("median_compute_ms_per_step"|"warmup_ms"): [\d.]+', r"\1: #", line)
    return re.sub(r"(\s)\d+\.\d+$", r"\1#", line)  # the latency column of a table row


SHOWN = [(c, out) for c, out in shown_outputs() if runs_here(shlex.split(c.removeprefix(".venv/bin/")))]


@pytest.mark.parametrize("command, shown", SHOWN, ids=[c.split("  ")[0][:60] for c, _ in SHOWN])
def test_every_output_the_readme_shows_is_what_the_command_prints(command, shown):
    argv = shlex.split(command)
    argv[0] = str(ROOT / argv[0])
    out = subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{command}\n{out.stderr}"
    printed = [without_timings(line.rstrip()) for line in out.stdout.splitlines()]
    position = 0
    for line in shown:  # in order; "..." stands for lines left out
        if line.strip() == "...":
            continue
        expected = without_timings(line.rstrip())
        assert expected in printed[position:], f"README shows a line {command!r} no longer prints:\n{line}\n" \
                                               f"it prints:\n" + "\n".join(printed)
        position = printed.index(expected, position) + 1


def test_the_readmes_zoo_table_states_each_cards_accuracy():
    """The README's zoo table is typed; the accuracy in each row is the one its card states (`stc-zoo list`)."""
    from stc_zoo.cli import zoo_rows

    lines = {line.split("|")[1].strip(" `"): line for line in README.splitlines() if line.startswith("| `")}
    for row in zoo_rows():
        assert row["name"] in lines, f"the README's zoo table has no row for {row['name']}"
        expected = row["accuracy"] if row["accuracy"] != "-" else "not trained yet"
        assert expected in lines[row["name"]], f"README row of {row['name']} does not state {expected!r}"
