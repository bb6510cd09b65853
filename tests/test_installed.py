"""What ``pip install`` gives, used as a user has it: ``make test-install`` (``pytest -m installed``).

The wheel and the sdist are built from this tree, each installed into a fresh venv with the pinned CPU
torch, and every command then runs from a folder outside the checkout, with nothing of the checkout on
``sys.path``: list, info, predict, show, stream of a file, send and stream over loopback UDP, profile,
evaluate, a one-epoch train on a tiny folder, simulate, export (ONNX and NIR) and warmup, and the README's Python
quickstart. The sdist's venv runs the quickstart and a prediction (the same code, built another way).
Minutes of installing and compiling: not part of ``make test``.
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eventfiles import SUBSET, random_events, write_nmnist, write_tiny_nmnist
from test_packaging import build

pytestmark = pytest.mark.installed
ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = re.search(r"^TORCH_PIN := (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
EXTRAS = "viz,formats,simulate,deploy"


def venv(where: Path, package: Path) -> Path:
    """A fresh venv at ``where`` with the pinned torch and ``package`` (a wheel or an sdist) and its extras."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for args in ([TORCH_PIN], [f"{package}[{EXTRAS}]"]):
        done = subprocess.run(pip + args, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"pip install {args}: {done.stderr[-3000:]}"
    return where / "bin"


def user_env(home: Path) -> dict:
    """The environment of a user: no checkout on sys.path, no test-suite settings, an empty Hub cache."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "TRITON_", "HF_", "NUMBA_", "VIRTUAL", "STC_ZOO_"))}
    return {**env, "HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def run(bin_: Path, cwd: Path, env: dict, *argv, timeout: int = 600) -> str:
    done = subprocess.run([str(bin_ / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("dist")
    tree = tmp / "tree"
    import shutil

    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv", "runs", ".cache", "__pycache__",
                                                               "*.egg-info", "build", "dist", ".gpu", "site"))
    return {"wheel": build("build_wheel", tree, tmp / "dist"), "sdist": build("build_sdist", tree, tmp / "dist")}


@pytest.fixture(scope="module")
def workplace(tmp_path_factory) -> Path:
    """A folder outside the checkout with what the commands read: recordings (the real subset beside it as
    ``../shared/data/nmnist-subset`` when there is one, for the README's paths), a tiny labelled folder, MNIST
    files to simulate."""
    top = tmp_path_factory.mktemp("user")
    work = top / "work"
    work.mkdir()
    subset = top / "shared" / "data" / "nmnist-subset"
    subset.parent.mkdir(parents=True)
    if SUBSET.is_dir():
        subset.symlink_to(SUBSET)
    else:  # the files the README's examples name, with random events
        rng = np.random.default_rng(0)
        for name in ("5/00001", "3/00008", "7/00016"):
            write_nmnist(subset / "Train" / f"{name}.bin", random_events(rng, 4000, 34, 34, 300_000))
    write_tiny_nmnist(work / "tiny")
    from test_simulate import tiny_mnist

    tiny_mnist(work / "mnist")
    return work


def python_blocks() -> list[str]:
    return [code for lang, code in re.findall(r"```(\w*)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
            if lang == "python"]


def test_every_command_runs_from_the_installed_wheel(built, workplace, tmp_path):
    start = time.perf_counter()
    bin_ = venv(tmp_path / "venv", built["wheel"])
    installed = time.perf_counter() - start
    env = user_env(tmp_path / "home")
    where = run(bin_, workplace, env, "python", "-c", "import stc_zoo, sys; print(stc_zoo.__file__); print(sys.path)")
    assert str(tmp_path / "venv") in where.splitlines()[0] and str(ROOT) not in where, where
    rec = "../shared/data/nmnist-subset/Train/3/00008.bin"
    stc = lambda *argv, **kw: run(bin_, workplace, env, "stc-zoo", *argv, **kw)  # noqa: E731
    assert "nmnist-t4" in stc("list")
    assert "config" in stc("info", "nmnist-t4").lower()
    assert "00008.bin" in stc("predict", "nmnist-t4", rec)
    stc("show", rec, "--model", "nmnist-t4", "--out", "figure.png")
    assert (workplace / "figure.png").stat().st_size > 1000
    assert '"steps": 15' in stc("stream", "nmnist-stream-20ms", rec, "--speed", "0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free port for the receiver
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = subprocess.Popen([str(bin_ / "stc-zoo"), "stream", "nmnist-stream-20ms", "--udp", f"127.0.0.1:{port}",
                                 "--timeout", "2", "--json"], cwd=workplace, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        for line in listener.stderr:  # the sender starts once the receiver says it listens
            if "listening" in line:
                break
        else:
            pytest.fail("the receiver ended without listening")
        stc("send", rec, "--udp", f"127.0.0.1:{port}", "--speed", "0")
        out, _ = listener.communicate(timeout=120)
    finally:
        listener.kill()
    assert listener.returncode == 0 and '"decision"' in out
    assert "synaptic" in stc("profile", "nmnist-t4", rec).lower()
    assert '"accuracy"' in stc("evaluate", "nmnist-t4", "--data", "tiny", "--split", "test")
    stc("train", "--model", "nmnist-t4", "--data", "tiny", "--out", "run", "--epochs", "1", "--cache-dir", "",
        "--batch-size", "8")
    assert (workplace / "run" / "final.safetensors").is_file()
    stc("simulate", "--mnist", "mnist", "--out", "sim", "--format", "bin", "--limit", "4")
    assert len(list((workplace / "sim" / "Train").rglob("*.bin"))) == 4
    stc("export", "nmnist-t4", "--format", "onnx", "--out", "onnx")
    assert (workplace / "onnx" / "step.onnx").is_file()
    stc("export", "nmnist-lif-t4", "--format", "nir", "--out", "nir")
    assert (workplace / "nir" / "network.nir").is_file()
    assert "warm: nmnist-t4" in stc("warmup", "nmnist-t4")
    for code in python_blocks():
        run(bin_, workplace, env, "python", "-c", code)
    print(f"wheel: installed in {installed:.0f} s, every command in {time.perf_counter() - start - installed:.0f} s")


def test_the_installed_sdist_predicts_and_runs_the_quickstart(built, workplace, tmp_path):
    bin_ = venv(tmp_path / "venv", built["sdist"])
    env = user_env(tmp_path / "home")
    assert "00001.bin" in run(bin_, workplace, env, "stc-zoo", "predict", "nmnist-t4",
                              "../shared/data/nmnist-subset/Train/5/00001.bin")
    out = run(bin_, workplace, env, "python", "-c", python_blocks()[0])
    assert "tensor([" in out
