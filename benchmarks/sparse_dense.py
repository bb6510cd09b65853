"""Where the sparse conv stops paying: block convs of a model timed sparse (the Numba kernel) and dense
(oneDNN) over input densities, and the densities real recordings give each block. Prints Markdown.

    .venv/bin/python benchmarks/sparse_dense.py --data ../shared/data/nmnist-subset/Train
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from stc_zoo import StcSNN, benchmark, network_numba
from stc_zoo.data import read_event_file
from stc_zoo.kernels import snn_numba
from stc_zoo.timing import median_ms


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-t4", help="zoo name or checkpoint folder (default nmnist-t4)")
    p.add_argument("--data", type=Path, help="a folder of recordings (*/*.bin) for the real densities")
    p.add_argument("--every", type=int, default=5, help="take every N-th recording of --data (default 5)")
    p.add_argument("--densities", default="0.05,0.1,0.13,0.15,0.2,0.3")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is shown (default 3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for oneDNN (default 2)")
    return p


def block_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's conv input ``[T * B, C, H, W]`` for the compressed ``x``: the events, then pooled spikes."""
    with torch.no_grad():
        spikes = model.network.forward_steps(x, record=True).spikes
    inputs = [x.flatten(0, 1)]
    for i in range(len(model.network.blocks) - 1):
        inputs.append(model.network.pool(spikes[f"blocks.{i}.lif"].flatten(0, 1)))
    return inputs


def crossover(model, densities: list[float], runs: int, rounds: int) -> list[dict]:
    """Sparse vs dense ms of each block's conv on random inputs (values 1-2) of the shape it sees."""
    w = network_numba.weights(model.network)
    rng = np.random.default_rng(0)
    T = model.config.input.T
    rows = []
    for i, (block, (H, W)) in enumerate(zip(w.blocks, w.sizes)):
        c_in, c_out = block.weight.shape[0], block.bias.shape[0]
        conv = model.network.blocks[i].conv
        for d in densities:
            x = (rng.integers(1, 3, (T, H, W, c_in)) * (rng.random((T, H, W, c_in)) < d)).astype(w.fc1.dtype)
            out = np.empty((T, H, W, c_out), dtype=w.fc1.dtype)
            dense_in = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            sparse_ms, dense_ms = [], []
            with torch.no_grad():
                for _ in range(rounds):
                    sparse_ms.append(median_ms(lambda: snn_numba.conv_sparse(x, block.weight, block.bias, out), runs))
                    dense_ms.append(median_ms(lambda: conv(dense_in), runs))
            rows.append({"block": f"block {i} conv {c_in}->{c_out} on {H}x{W}", "density": d,
                         "sparse": statistics.median(sparse_ms), "dense": statistics.median(dense_ms)})
    return rows


def real_densities(model, files: list[Path]) -> list[np.ndarray]:
    """Per block, the input density of each recording."""
    per_block: list[list[float]] = [[] for _ in model.network.blocks]
    for f in files:
        for i, h in enumerate(block_inputs(model, model.compress(read_event_file(f)))):
            per_block[i].append(float((h != 0).float().mean()))
    return [np.array(d) for d in per_block]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    model = StcSNN.from_pretrained(args.model).fuse_for_inference()
    densities = [float(d) for d in args.densities.split(",")]
    print(f"Machine: {benchmark.environment()}\n")
    print(f"Random inputs (values 1-2, T = {model.config.input.T} frames of each block's input shape), median "
          f"of {args.rounds} interleaved rounds of {args.runs} runs:\n")
    print("| conv | input density | sparse (Numba) ms | dense (oneDNN) ms | sparse / dense |")
    print("|---|---:|---:|---:|---:|")
    for r in crossover(model, densities, args.runs, args.rounds):
        print(f"| {r['block']} | {r['density']:.2f} | {r['sparse']:.3f} | {r['dense']:.3f} | {r['sparse'] / r['dense']:.2f} |")
    if args.data:
        files = sorted(args.data.glob("*/*.bin"))[::args.every]
        print(f"\nInput density of each block on {len(files)} recordings of {args.data} (every {args.every}th):\n")
        print("| conv input | median | 10th pct | 90th pct | max |")
        print("|---|---:|---:|---:|---:|")
        for i, d in enumerate(real_densities(model, files)):
            lo, hi = np.percentile(d, [10, 90])
            print(f"| block {i} | {np.median(d):.3f} | {lo:.3f} | {hi:.3f} | {d.max():.3f} |")


if __name__ == "__main__":
    main()
