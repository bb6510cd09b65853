"""How fast the simulator makes N-MNIST-style recordings: images per second on one core, its parts
(rendering the frames, the pixel model), and two processes side by side. Prints Markdown.

    .venv/bin/python benchmarks/simulate.py --mnist ../shared/data/mnist-train

Each row is the median over ``--rounds`` interleaved rounds of the time per image (``--images`` MNIST
images per round, first-call compilation excluded); the target is at least 200 images per second on
one core (issue 30), so 59,000 in minutes on two.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import numba
import numpy as np

from stc_zoo import __version__
from stc_zoo.simulate import SaccadeParams, saccades
from stc_zoo.simulate.images import read_mnist
from stc_zoo.simulate.pixel import simulate_checked
from stc_zoo.simulate.saccades import render


def per_image(fn, images: np.ndarray) -> float:
    start = time.perf_counter()
    for i, image in enumerate(images):
        fn(image, i)
    return (time.perf_counter() - start) / len(images)


def chunk(args) -> int:
    root, first, count = args
    images, _ = read_mnist(root, range(first, first + count))
    for i, image in enumerate(images):
        saccades(image, seed=first + i)
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", default="../shared/data/mnist-train", help="MNIST's IDX files")
    p.add_argument("--images", type=int, default=200, help="images per round (default 200)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--parallel", type=int, default=2000, help="images for the two-process row (default 2000)")
    args = p.parse_args()
    images, _ = read_mnist(args.mnist, range(1000, 1000 + args.images))
    params = SaccadeParams()
    frames, times = render(images[0], params)
    saccades(images[0])  # compile (or load the cache) before timing
    rows = {"whole recording (saccades)": lambda im, i: saccades(im, seed=i),
            "rendering the frames": lambda im, i: render(im, params),
            "pixel model (frames -> events)": lambda im, i: simulate_checked(frames, times, params.pixel, i)}
    timed = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, fn in rows.items():
            timed[name].append(per_image(fn, images))
    print(f"stc-zoo {__version__}, numba {numba.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {args.images} MNIST images per round, median of {args.rounds} interleaved rounds\n")
    print("| what | ms per image | images per second |\n|---|---|---|")
    for name, values in timed.items():
        ms = statistics.median(values) * 1e3
        print(f"| {name} | {ms:.2f} | {1e3 / ms:.0f} |")
    if args.parallel:
        half = args.parallel // 2
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(chunk, [(args.mnist, 1000, 4), (args.mnist, 1004, 4)]))  # start and compile
            start = time.perf_counter()
            done = sum(pool.map(chunk, [(args.mnist, 2000, half), (args.mnist, 2000 + half, half)]))
            seconds = time.perf_counter() - start
        print(f"| whole recordings, 2 processes ({done} images) | {seconds / done * 1e3:.2f} | {done / seconds:.0f} |")
        print(f"\n59,000 images at that rate: {59_000 / (done / seconds) / 60:.1f} min")


if __name__ == "__main__":
    main()
