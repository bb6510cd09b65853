"""A NIR export run by the peers that read NIR, against the package, on real recordings (Markdown tables).

    .venv/bin/python benchmarks/nir_readers.py --model nmnist-lif-t4 --data ../shared/data/nmnist-subset/Train

For each reader variant (``stc_zoo.export.to_nir``; snnTorch 1.0, Norse 1.1, Sinabs 3.1 as it imports and
with one-spike neurons) the recordings' steps go through the reader and through the package's reference:
the share of spikes that agree in every layer, the largest logit difference, the recordings whose class
differs, and the reader's accuracy against the folder labels. Then batch-1 latency of each beside the
package's Numba path (the network on one recording's compressed steps), in interleaved rounds: each cell
the median over rounds of the median of ``--runs`` calls, the ratio against the Numba path of the same round.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch

from stc_zoo import StcSNN, __version__
from stc_zoo.data import read_event_file
from stc_zoo.export import nir_readers as readers
from stc_zoo.export.to_nir import nir_graph
from stc_zoo.export.to_onnx import inference_copy
from stc_zoo.benchmark import interleaved

DT = 1e-3
BASELINE = "package, Numba path (what `predict` runs)"


def variants(model) -> dict:
    """Name -> (graph, runner(x) -> (logits, spikes))."""
    g = {r: nir_graph(model, DT, r) for r in ("snntorch", "norse", "sinabs")}
    return {"snnTorch 1.0 (`--reader snntorch`)": lambda x: readers.run_snntorch(g["snntorch"], x),
            "Norse 1.1 (`--reader norse`)": lambda x: readers.run_norse(g["norse"], x, DT),
            "Sinabs 3.1 as imported (`--reader sinabs`)": lambda x: readers.run_sinabs(g["sinabs"], x),
            "Sinabs 3.1, one-spike neurons reset to zero": lambda x: readers.run_sinabs(g["sinabs"], x, True)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-lif-t4")
    p.add_argument("--data", type=Path, required=True, help="a folder of <class>/<recording> files")
    p.add_argument("--count", type=int, default=1000, help="recordings (every n-th of the folder)")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = StcSNN.from_pretrained(args.model).eval()
    files = sorted(args.data.glob("*/*.bin"))
    files = files[:: max(1, len(files) // args.count)][: args.count]
    labels = np.array([int(f.parent.name) for f in files])
    network = inference_copy(model, torch.float32)
    runners = variants(model)
    agree = {name: {"spikes": 0, "differ": 0, "worst": 0.0, "class_differs": 0, "right": 0} for name in runners}
    package_right = 0
    for a in range(0, len(files), args.batch):
        x = model.compress([read_event_file(f) for f in files[a:a + args.batch]]).float()
        with torch.no_grad():
            ref = network.forward_steps(x, record=True)
        ref_logits = ref.logits.numpy()
        ref_class = ref_logits.mean(0).argmax(1)
        y = labels[a:a + args.batch]
        package_right += int((ref_class == y).sum())
        for name, run in runners.items():
            out, layers = run(x)
            row = agree[name]
            for s, r in zip(layers, ref.spikes.values()):
                row["spikes"] += r.numel()
                row["differ"] += int(((r.numpy() > 0) != (s > 0)).sum())
            row["worst"] = max(row["worst"], float(np.abs(out - ref_logits).max()))
            cls = out.mean(0).argmax(1)
            row["class_differs"] += int((cls != ref_class).sum())
            row["right"] += int((cls == y).sum())
    n = len(files)
    print(f"# {args.model}: NIR readers against the package ({n} recordings of {args.data})\n")
    print(f"stc-zoo {__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}; "
          f"the package's reference: {package_right / n * 100:.1f}% right\n")
    print("| reader | spikes that differ | largest logit difference | recordings whose class differs | accuracy |")
    print("|---|---:|---:|---:|---:|")
    for name, row in agree.items():
        print(f"| {name} | {row['differ']:,} of {row['spikes']:,} | {row['worst']:.3g} | {row['class_differs']} of {n} "
              f"| {row['right'] / n * 100:.1f}% |")
    x = model.compress(read_event_file(files[0])).float()
    model.network.eval()
    g = {r: nir_graph(model, DT, r) for r in ("snntorch", "norse", "sinabs")}
    nets = {"snnTorch 1.0 (`--reader snntorch`)": (readers.run_snntorch, readers.load_snntorch(g["snntorch"]), ()),
            "Norse 1.1 (`--reader norse`)": (readers.run_norse, readers.load_norse(g["norse"], DT), (DT,)),
            "Sinabs 3.1 as imported (`--reader sinabs`)": (readers.run_sinabs, readers.load_sinabs(g["sinabs"], 1), ()),
            "Sinabs 3.1, one-spike neurons reset to zero": (readers.run_sinabs,
                                                            readers.load_sinabs(g["sinabs"], 1, True), ())}
    rows = {BASELINE: lambda: model.network(x),
            **{name: (lambda run=run, net=net, extra=extra: run(net, x, *extra)) for name, (run, net, extra) in nets.items()}}
    with torch.no_grad():
        timed = interleaved(rows, args.rounds, args.runs, warmup=3, baseline=BASELINE)
    print(f"\nBatch 1, the network on one recording's {model.config.input.T} steps, median of {args.runs} calls, "
          f"{args.rounds} interleaved rounds, 1 thread (ratio: the median of the rounds' ratios, and their range):\n")
    print("| path | ms | x the Numba path | ratio range |\n|---|---:|---:|---|")
    for row in timed:
        print(f"| {row['path']} | {row['ms']:.3f} | {row['x fast']:.2f} | {row['ratio min']:.2f}-{row['ratio max']:.2f} |")


if __name__ == "__main__":
    main()
