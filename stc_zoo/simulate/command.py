"""``stc-zoo simulate``: images or frame arrays -> a labelled event folder, or the simulation file alone.

    stc-zoo simulate --mnist ../shared/data/mnist-train --range 1000:60000 --out sims/mnist --format bin
    stc-zoo simulate --images my-images/ --out sims/mine            # ROOT/<class>/<image>.png|jpg
    stc-zoo simulate --frames my-frames/ --out sims/frames          # ROOT/<class>/<name>.npz
    stc-zoo simulate --mnist ... --range 1000:60000 --randomize --spec-only --out sims/pretrain
        # writes sims/pretrain/simulation.json only: stc-zoo train --dataset simulated --data sims/pretrain
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from ..errors import SimulationError
from .randomize import Randomization
from .saccades import SaccadeParams
from .spec import Simulation


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--mnist", metavar="DIR", help="MNIST's IDX files (train-images-idx3-ubyte[.gz] and labels)")
    what.add_argument("--images", metavar="DIR", help="a folder of PNG/JPEG images per class: DIR/<class>/<image>")
    what.add_argument("--frames", metavar="DIR", help="frame arrays per class: DIR/<class>/<name>.npz holding "
                      "'frames' [N, H, W] (linear intensity) and 'times_us' [N]")
    p.add_argument("--out", required=True, help="output folder (OUT/Train/<class>/<name>.<format> and "
                   "OUT/simulation.json); rerunning continues where a killed run stopped")
    p.add_argument("--range", dest="images_range", metavar="FIRST:STOP", help="with --mnist: images FIRST..STOP-1 "
                   "(default all; 1000:60000 leaves out the images the real N-MNIST subset was recorded from)")
    p.add_argument("--format", choices=("bin", "npz"), default="npz", help="N-MNIST's .bin (34 x 34 sensors, the "
                   "N-MNIST reader reads the folder) or .npz (any size; default)")
    p.add_argument("--seed", type=int, default=0, help="0 (default): item i is simulated with seed i, as "
                   "saccades(image, seed=i); another value mixes it in")
    p.add_argument("--randomize", action="store_true", help="draw the parameters per recording around the "
                   "calibrated ones (domain randomisation, for training)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a parameter: a SaccadeParams field (gamma=2.2, start=[0,0]) or a pixel one "
                        "(pixel.noise_hz=1.0)")
    p.add_argument("--limit", type=int, help="simulate the first N items only")
    p.add_argument("--spec-only", action="store_true", help="write OUT/simulation.json alone: training simulates "
                   "from it (stc-zoo train --dataset simulated --data OUT), no recordings on disk")


def parse_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    first, sep, stop = text.partition(":")
    try:
        lo, hi = int(first), int(stop)
    except ValueError:
        lo = hi = -1
    if not sep or lo < 0 or hi <= lo:
        raise SimulationError(f"--range must be FIRST:STOP with 0 <= FIRST < STOP, got {text!r}")
    return lo, hi


def parameters(changes: list[str]) -> SaccadeParams:
    """The calibrated parameters with ``--set FIELD=VALUE`` changes (values as JSON, else text)."""
    params = SaccadeParams()
    pixel_fields = {f.name for f in dataclasses.fields(params.pixel)}
    fields = {f.name for f in dataclasses.fields(params)} - {"pixel"}
    top, pixel = {}, {}
    for item in changes:
        key, sep, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if not sep:
            raise SimulationError(f"--set wants FIELD=VALUE, got {item!r}")
        if key.startswith("pixel.") and key[6:] in pixel_fields:
            pixel[key[6:]] = value
        elif key in fields:
            top[key] = value
        else:
            raise SimulationError(f"--set {key}: no such parameter; fields: {', '.join(sorted(fields))}; pixel: "
                                  f"{', '.join('pixel.' + f for f in sorted(pixel_fields))}")
    try:
        return params.replace(pixel=params.pixel.replace(**pixel), **top)
    except TypeError as err:
        raise SimulationError(f"--set: {err}") from None


def simulation(args: argparse.Namespace) -> Simulation:
    kind, root = next((k, getattr(args, k)) for k in ("mnist", "images", "frames") if getattr(args, k))
    images = parse_range(args.images_range)
    if images is not None and kind != "mnist":
        raise SimulationError("--range picks MNIST images; --images and --frames folders are simulated whole")
    return Simulation(kind=kind, root=str(root), images=images, seed=args.seed, params=parameters(args.set),
                      randomize=Randomization() if args.randomize else None)


def run(args: argparse.Namespace) -> None:
    from .write import check_folder, summary, write_folder

    sim = simulation(args)
    if args.limit is not None and args.limit < 1:
        raise SimulationError(f"--limit must be >= 1, got {args.limit}")
    if args.spec_only:
        source = sim.open()  # checked now, not at training time
        from pathlib import Path

        check_folder(sim, Path(args.out))
        path = sim.write(args.out)
        print(f"wrote {path}: {len(source):,} recordings of {sim.kind} {source.describe().get('images', '')}, "
              f"simulated when read (stc-zoo train --dataset simulated --data {args.out})")
        return
    print(summary(write_folder(sim, args.out, args.format, args.limit)))
