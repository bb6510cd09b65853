"""End-to-end benchmark: raw events -> probabilities on the CPU, every path side by side, and
where the fast path's time goes. Prints Markdown for BENCHMARKS.md.

    .venv/bin/python benchmarks/e2e.py --events ../shared/data/nmnist-subset/Train/3/00008.bin
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from stc_zoo import StcSNN, benchmark
from stc_zoo.data import read_event_file, synthetic_events


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-t4", help="zoo name or checkpoint folder (default nmnist-t4)")
    p.add_argument("--events", type=Path, help="recording to time (default: synthetic events)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--runs", type=int, default=100, help="timed runs per row per round (default 100)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--no-compile", action="store_true", help="leave out torch.compile of the SpikingJelly baseline")
    p.add_argument("--batch-data", type=Path, help="a folder of recordings (N-MNIST layout) for the batch table; "
                   "default: the --events recording repeated")
    p.add_argument("--batch", type=int, default=32, help="batch of the throughput table (default 32)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    model = StcSNN.from_pretrained(args.model).fuse_for_inference()
    events = read_event_file(args.events) if args.events else synthetic_events(model.config.input.sensor_size, 5520)
    rows, facts = benchmark.compare(model, events, args.rounds, args.runs, args.warmup,
                                    compile_baseline=not args.no_compile)
    print(f"Command: `{' '.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])}`\n")
    print(f"Machine: {benchmark.environment()}\n")
    print(f"Model {args.model}, {len(events):,} events.\n")
    print(benchmark.render(rows, facts, model.config.input.T, args.rounds, args.runs))
    recordings = ([read_event_file(f) for f in sorted(args.batch_data.glob("*/*.bin"))[::10][:64]]
                  if args.batch_data else [events])
    print()
    print(benchmark.render_batch(benchmark.batch_rows(model, recordings, args.batch, args.rounds, max(args.runs // 10, 3)),
                                 args.batch, args.rounds, max(args.runs // 10, 3)))
    print("\nWhere the fast path's time goes (each stage timed alone):\n")
    print(benchmark.render_profile(benchmark.profile_fast_path(model, events, args.runs)))


if __name__ == "__main__":
    main()
