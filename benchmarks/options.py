"""What each CPU option buys for the network alone (input compressed once), batch 1, nmnist-t4.

    .venv/bin/python benchmarks/options.py --events ../shared/data/nmnist-subset/Train/3/00008.bin

Rows: the PyTorch reference with and without BatchNorm folded, with all steps in one batch (v0.1)
or one step at a time (what makes streaming bit-exact), the reference under torch.compile
(inductor; needs a C++ compiler), and the Numba path. Interleaved rounds, median ms, ratio to the
Numba path (median of per-round ratios).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stc_zoo import StcSNN
from stc_zoo.data import read_event_file
from stc_zoo.timing import median_ms


def reference(fold: bool, per_step: bool, x: torch.Tensor):
    model = StcSNN.from_pretrained("nmnist-t4", backend="torch").eval()
    if fold:
        model.fuse_for_inference()
    return lambda: model.network._reference_steps(x, {}, False, per_step=per_step).logits.mean(0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", required=True, help="a recording of the N-MNIST sensor")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    fast = StcSNN.from_pretrained("nmnist-t4").eval()
    x = fast.compress(read_event_file(args.events))
    rows = {
        "reference, BN not folded, steps batched (v0.1)": reference(False, False, x),
        "reference, BN folded, steps batched": reference(True, False, x),
        "reference, BN folded, one step at a time (streaming-exact)": reference(True, True, x),
    }
    compiled = torch.compile(reference(True, False, x))
    start = time.perf_counter()
    with torch.no_grad():
        compiled()
    print(f"torch.compile (inductor): first call {time.perf_counter() - start:.0f} s\n")
    rows["reference, BN folded, steps batched, torch.compile (inductor)"] = compiled
    rows["Numba path (the default; BN folded on the fly)"] = lambda: fast.network(x)
    per = {k: [] for k in rows}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, fn in rows.items():
                per[name].append(median_ms(fn, args.runs, 5))
    numba = per["Numba path (the default; BN folded on the fly)"]
    print("| network only, batch 1, T = 4 | median ms | x the Numba path |\n|---|---:|---:|")
    for name, times in per.items():
        print(f"| {name} | {statistics.median(times):.3f} | {statistics.median(a / b for a, b in zip(times, numba)):.2f} |")


if __name__ == "__main__":
    main()
