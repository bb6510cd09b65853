"""Time to a first prediction: whole processes, as a user or a container start meets them (Markdown).

    .venv/bin/python benchmarks/first_prediction.py --file ../shared/data/nmnist-subset/Train/5/00001.bin

Rows (each a fresh interpreter, timed from start to exit, in interleaved rounds; the median is shown):
- ``stc-zoo predict MODEL FILE`` with an empty Numba cache (a fresh install): by default the PyTorch
  reference answers and nothing compiles; with ``STC_ZOO_COMPILE=1`` the fast path compiles first;
- ``stc-zoo warmup MODEL`` from an empty cache (what an image's build step pays once);
- ``stc-zoo predict MODEL FILE`` with the cache ``stc-zoo warmup`` filled (the fast path loads);
- ``StcSNN.from_pretrained(MODEL)`` with ``HF_ENDPOINT`` at a server that accepts connections and never
  answers (a machine whose Hub is unreachable): the bundled copy after the bounded wait;
- ``import stc_zoo; from stc_zoo import StcSNN`` alone, for scale.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numba
import torch

from stc_zoo import __version__


def silent_endpoint() -> str:
    """An HTTP endpoint on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept() -> None:
        while True:
            held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}"


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-t4")
    p.add_argument("--file", required=True, help="a recording for predict")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    bin_ = Path(sys.executable).parent
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "NUMBA_", "TRITON_", "STC_ZOO_"))}
    base.update(HF_HUB_OFFLINE="1")
    warm = tempfile.mkdtemp(prefix="numba-warm-")
    subprocess.run([str(bin_ / "stc-zoo"), "warmup", args.model], env={**base, "NUMBA_CACHE_DIR": warm},
                   check=True, capture_output=True)
    offline = {k: v for k, v in base.items() if k != "HF_HUB_OFFLINE"}
    offline.update(HF_ENDPOINT=silent_endpoint(), HF_HOME=tempfile.mkdtemp(prefix="hf-empty-"), NUMBA_CACHE_DIR=warm)
    predict = [str(bin_ / "stc-zoo"), "predict", args.model, args.file]
    rows = {"predict, empty Numba cache (cold; the default: the reference answers)": (predict, {}),
            "predict, empty Numba cache, STC_ZOO_COMPILE=1 (compiles the fast path first)": (
                predict, {"STC_ZOO_COMPILE": "1"}),
            "stc-zoo warmup, empty Numba cache (an image's build step)": (
                [str(bin_ / "stc-zoo"), "warmup", args.model], {}),
            "predict, cache filled by stc-zoo warmup (warm: the fast path loads)": (
                predict, {**base, "NUMBA_CACHE_DIR": warm}),
            "from_pretrained, Hub endpoint silent (bundled copy)": (
                [sys.executable, "-c", f"from stc_zoo import StcSNN; StcSNN.from_pretrained({args.model!r})"], offline),
            "import stc_zoo and StcSNN only": ([sys.executable, "-c", "from stc_zoo import StcSNN"], base)}
    seconds = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (argv, env) in rows.items():
            if "NUMBA_CACHE_DIR" not in env:  # a new empty cache every time
                cold = tempfile.mkdtemp(prefix="numba-cold-")
                seconds[name].append(timed(argv, {**base, **env, "NUMBA_CACHE_DIR": cold}))
                shutil.rmtree(cold, ignore_errors=True)
            else:
                seconds[name].append(timed(argv, env))
    print(f"stc-zoo {__version__}, torch {torch.__version__}, numba {numba.__version__}, Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; whole processes, median of "
          f"{args.rounds} interleaved rounds\n")
    print("| process | seconds (median) | all rounds |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")


if __name__ == "__main__":
    main()
