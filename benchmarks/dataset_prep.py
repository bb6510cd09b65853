"""Full-size dry run of a seed dataset's data path on generated recordings in its published format.

DVS128 Gesture and CIFAR10-DVS cannot be downloaded on the machines this project is built on, so
this writes recordings at their real sizes (assumptions printed with the results), reads and
compresses the train split exactly as training does (with 1 and more worker threads), measures
throughput, peak memory and cache size, runs a few training steps of the zoo entry on the result,
and deletes the generated files.

    .venv/bin/python benchmarks/dataset_prep.py dvsgesture
    .venv/bin/python benchmarks/dataset_prep.py cifar10dvs --recordings 1000
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eventfiles import write_aedat2_cifar10dvs, write_aedat31, write_labels_csv  # noqa: E402

from stc_zoo import StcSNN  # noqa: E402
from stc_zoo.data import READERS  # noqa: E402
from stc_zoo.data.compressed import compress_dataset  # noqa: E402
from stc_zoo.zoo import get_entry  # noqa: E402

# Sizes of the published datasets (what the generated files imitate).
GESTURE = dict(recordings=122, train=98, gestures=11, gesture_s=6.0, events_per_s=60_000)
CIFAR = dict(files=10_000, seconds=1.3, events=90_000)


def events(rng, n: int, W: int, H: int, t0: int, t1: int) -> np.ndarray:
    ev = np.zeros(n, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    ev["x"], ev["y"] = rng.integers(0, W, n), rng.integers(0, H, n)
    ev["t"], ev["p"] = np.sort(rng.integers(t0, t1, n)), rng.integers(0, 2, n)
    return ev


def write_gesture(root: Path, recordings: int, rng) -> int:
    """``recordings`` AEDAT 3.1 files with 11 labelled gesture windows each; returns the events written."""
    total, names = 0, []
    for r in range(recordings):
        name = f"user{r // 4 + 1:02d}_light{r % 4}.aedat"
        rows, parts, t = [], [], 1_000_000
        for g in range(GESTURE["gestures"]):
            n = int(GESTURE["events_per_s"] * GESTURE["gesture_s"])
            end = t + int(GESTURE["gesture_s"] * 1e6)
            parts.append(events(rng, n, 128, 128, t, end))
            rows.append((g + 1, t, end))
            t = end + 500_000
        ev = np.concatenate(parts)
        write_aedat31(root / name, ev, packet_size=4096)
        write_labels_csv(root / f"{Path(name).stem}_labels.csv", rows)
        names.append(name)
        total += len(ev)
    split = GESTURE["train"] * recordings // GESTURE["recordings"]
    (root / "trials_to_train.txt").write_text("\n".join(names[:split]) + "\n")
    (root / "trials_to_test.txt").write_text("\n".join(names[split:]) + "\n")
    return total


def write_cifar(root: Path, files: int, rng) -> int:
    from stc_zoo.data.cifar10dvs import CLASSES

    for i in range(files):
        ev = events(rng, CIFAR["events"], 128, 128, 0, int(CIFAR["seconds"] * 1e6))
        write_aedat2_cifar10dvs(root / CLASSES[i % 10] / f"cifar10_{CLASSES[i % 10]}_{i}.aedat", ev)
    return files * CIFAR["events"]


def folder_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=("dvsgesture", "cifar10dvs"))
    p.add_argument("--recordings", type=int, help="files to write (default: all 122 / 1,000 of 10,000)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=3, help="training steps to time on the result")
    p.add_argument("--dir", type=Path, help="where to write (default: a temporary folder, deleted)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    name = f"{args.dataset}-t4"
    entry = get_entry(name)
    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(dir=args.dir)) / args.dataset
    root.mkdir(parents=True)
    try:
        start = time.perf_counter()
        if args.dataset == "dvsgesture":
            n = args.recordings or GESTURE["recordings"]
            writer = write_gesture
            what = (f"{n} AEDAT 3.1 recordings x 11 gestures x {GESTURE['gesture_s']:g} s at "
                    f"{GESTURE['events_per_s']:,} events/s ({n} of DVS128 Gesture's {GESTURE['recordings']})")
        else:
            n = args.recordings or 1000
            writer = write_cifar
            what = (f"{n:,} AEDAT 2.0 files of {CIFAR['events']:,} events over {CIFAR['seconds']:g} s "
                    f"({n / CIFAR['files']:.0%} of CIFAR10-DVS's {CIFAR['files']:,})")
        # Written by a child process, so this process's peak memory is the data path's alone.
        with multiprocessing.get_context("fork").Pool(1) as pool:
            written = pool.apply(writer, (root, n, rng))
        print(f"{name}: wrote {what}: {written:,} events, {folder_bytes(root) / 1e9:.2f} GB in "
              f"{time.perf_counter() - start:.0f} s\n")
        dataset = READERS[entry.reader](root, "train")
        model = StcSNN(entry.config)
        model.pipeline.batch([events(rng, 10, 128, 128, 0, 10)])  # compile/load the kernel before measuring
        print(f"peak RSS before reading any recording (torch, numba, the model): {peak_mb():,.0f} MB\n")
        test = READERS[entry.reader](root, "test")
        events_read = written * len(dataset) / (len(dataset) + len(test))  # the train split's share
        rows = []
        for workers in args.workers:
            cache = root.parent / f"cache-{workers}"
            start = time.perf_counter()
            X, y = compress_dataset(dataset, model.pipeline, cache, workers=workers)
            seconds = time.perf_counter() - start
            rows.append((workers, len(dataset), seconds, events_read / seconds, peak_mb(),
                         folder_bytes(cache) / 1e6))
        print("| worker threads | train samples | wall s | events/s read + compressed | peak RSS MB | cache MB |")
        print("|---:|---:|---:|---:|---:|---:|")
        for w, s, sec, rate, mem, cache in rows:
            print(f"| {w} | {s:,} | {sec:.1f} | {rate / 1e6:.1f} M | {mem:,.0f} | {cache:.0f} |")
        start = time.perf_counter()
        again = compress_dataset(dataset, model.pipeline, root.parent / f"cache-{args.workers[0]}")
        print(f"\nfrom the cache: {time.perf_counter() - start:.2f} s ({len(again[0]):,} samples)")
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        times = []
        for step in range(args.steps):
            idx = torch.randint(0, len(X), (16,))
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(X[idx].transpose(0, 1)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        print(f"training steps (batch 16, {entry.config.network.channels} channels, input "
              f"{tuple(X.shape[1:])}): {', '.join(f'{t:.2f}' for t in times)} s; loss {loss.item():.3f}; "
              f"peak RSS {peak_mb():,.0f} MB")
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
        print(f"deleted {root.parent}")


if __name__ == "__main__":
    main()
