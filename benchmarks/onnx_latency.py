"""Latency of an exported model in onnxruntime beside the package's own CPU paths, batch 1 (Markdown).

    .venv/bin/python benchmarks/onnx_latency.py --model nmnist-t4 --data ../shared/data/nmnist-subset/Train

Each row times the network on one recording's compressed steps (the compression is the package's in
every row): the Numba path (what ``predict`` runs on a CPU), the PyTorch reference, onnxruntime on
``sequence.onnx`` (the whole recording) and on ``step.onnx`` called T times with its state. Rows run
in interleaved rounds; each cell is the median over rounds of the median of ``--runs`` calls; the
ratio column is against the Numba path measured in the same rounds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from stc_zoo import StcSNN, __version__
from stc_zoo.data import read_event_file, synthetic_events
from stc_zoo.export import onnx as export_onnx
from stc_zoo.timing import median_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-t4")
    p.add_argument("--data", type=Path, help="a folder of recordings (*/*.bin); synthetic events without it")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="threads for torch and onnxruntime (default 1)")
    args = p.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    model = StcSNN.from_pretrained(args.model)
    events = (read_event_file(sorted(args.data.glob("*/*.bin"))[0]) if args.data
              else synthetic_events(model.config.input.sensor_size, 4000))
    x = model.compress(events)
    folder = Path(tempfile.mkdtemp()) / "onnx"
    export_onnx(model, folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    sequence = ort.InferenceSession(str(folder / "sequence.onnx"), options, providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(str(folder / "step.onnx"), options, providers=["CPUExecutionProvider"])
    rest = {i.name: np.zeros([1 if not isinstance(d, int) else d for d in i.shape], np.float32)
            for i in step.get_inputs()[1:]}
    xs = x.numpy()

    def steps() -> None:
        state = rest
        for frame in xs:
            out = step.run(None, {"x": frame, **state})
            state = dict(zip(rest, out[1:]))

    reference = StcSNN.from_pretrained(args.model, backend="torch")
    rows = {"package, Numba (predict's CPU path)": lambda: model.network(x),
            "package, PyTorch reference": lambda: reference.network(x),
            "onnxruntime, sequence.onnx": lambda: sequence.run(None, {"x": xs}),
            f"onnxruntime, step.onnx x {len(xs)}": steps}
    with torch.no_grad():
        timed = {name: [] for name in rows}
        for _ in range(args.rounds):
            for name, fn in rows.items():
                timed[name].append(median_ms(fn, args.runs, warmup=10))
    base = timed["package, Numba (predict's CPU path)"]
    print(f"{args.model}, batch 1, {len(xs)} steps, {args.threads} thread(s); stc-zoo {__version__}, torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}, {platform.machine()}; median of {args.rounds} "
          f"interleaved rounds of {args.runs} calls\n")
    print("| path | ms per recording | x Numba |\n|---|---|---|")
    for name, values in timed.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"| {name} | {statistics.median(values):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
