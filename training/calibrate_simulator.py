"""Calibrate the saccade simulator against the real N-MNIST subset, and show how close it comes.

N-MNIST's recording ``Train/<label>/<i + 1>.bin`` is MNIST training image ``i``; the subset holds
images 0..999. This script simulates those images and compares each simulated recording with the
real recording of the same image:

- events per recording (mean, spread), ON fraction (p = 1 in N-MNIST's files), events per 10 ms over
  the recording (the three bursts), same-pixel gaps (5th percentile), background rate (events with no
  other event within one pixel and 5 ms, per pixel per second);
- frame correlation: ON and OFF counts over 0-105, 105-210 and 210-315 ms after the first event, a
  2 x 3 x 34 x 34 array, Pearson correlation between the simulated and the real recording of the same
  image, no alignment; as the floor, the same correlation between real recordings of two different
  images of one class.

``--fit`` fits the parameters on images 0..299 only (coordinate descent on the mean frame correlation,
then the thresholds scaled to the real event count, then the background rate), and the report is on
images 300..999, which the fit never saw. ``--out`` writes the report (JSON) and a figure real |
simulated; docs/SIMULATION.md records a run.

    python training/calibrate_simulator.py --fit --out training/logs/simulator-calibration
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from stc_zoo.data.nmnist import NMNIST
from stc_zoo.simulate import SaccadeParams, saccades
from stc_zoo.simulate.images import read_mnist
from stc_zoo.simulate.saccades import NMNIST_PATH

WINDOW_US, BIN_US, BINS = 105_000, 10_000, 32
FIT, REPORT = range(0, 300), range(300, 1000)


def recording_frames(events: np.ndarray) -> np.ndarray:
    """ON/OFF counts per 105 ms window after the first event: ``[2, 3, 34, 34]`` flattened."""
    frames = np.zeros((2, 3, 34, 34))
    if events.size:
        k = np.minimum((events["t"] - events["t"][0]) // WINDOW_US, 2)
        np.add.at(frames, (events["p"].astype(int), k, events["y"], events["x"]), 1)
    return frames.ravel()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def isolated_rate(events: np.ndarray, size: int = 34, radius_us: int = 5000) -> float:
    """Background events per pixel per second: events with no other event within one pixel and 5 ms."""
    if events.size < 2:
        return 0.0
    t, x, y = events["t"], events["x"].astype(int), events["y"].astype(int)
    alone = np.ones(events.size, bool)
    lo = np.searchsorted(t, t - radius_us)
    hi = np.searchsorted(t, t + radius_us, side="right")
    for e in range(events.size):  # a few thousand events: plain loops are fine here
        near = slice(lo[e], hi[e])
        close = (np.abs(x[near] - x[e]) <= 1) & (np.abs(y[near] - y[e]) <= 1)
        alone[e] = close.sum() <= 1
    duration = max(int(t[-1] - t[0]), 1) * 1e-6
    return float(alone.sum() / (size * size) / duration)


def gap_p5(events: np.ndarray) -> float:
    """5th percentile of the gaps between consecutive events of the same pixel (ms)."""
    key = events["y"].astype(np.int64) * 64 + events["x"]
    order = np.lexsort((events["t"], key))
    same = key[order][1:] == key[order][:-1]
    gaps = np.diff(events["t"][order])[same]
    return float(np.percentile(gaps, 5) / 1000) if gaps.size else float("nan")


def statistics(recordings: list[np.ndarray]) -> dict:
    counts = np.array([r.size for r in recordings])
    profile = np.mean([np.histogram(r["t"] - r["t"][0], bins=np.arange(BINS + 1) * BIN_US)[0] for r in recordings], axis=0)
    return {"events_mean": float(counts.mean()), "events_std": float(counts.std()),
            "on_fraction": float(np.mean([r["p"].mean() for r in recordings])),
            "per_10ms": [round(float(v), 1) for v in profile],
            "gap_p5_ms": float(np.median([gap_p5(r) for r in recordings[:200]])),
            "background_hz": float(np.mean([isolated_rate(r) for r in recordings[:100]]))}


class Calibration:
    """The real recordings and images of the subset, and what a parameter set scores on them."""

    def __init__(self, real_root: str, mnist_root: str):
        dataset = NMNIST(real_root, "train")
        by_image = {int(Path(f).stem) - 1: i for i, f in enumerate(dataset.files)}
        self.images, self.labels = read_mnist(mnist_root, range(0, 1000))
        missing = [i for i in range(1000) if i not in by_image]
        if missing:
            sys.exit(f"{real_root}: no recording of MNIST images {missing[:5]}...: this is not the 1,000-recording subset")
        self.real = [dataset.load_events(by_image[i]) for i in range(1000)]
        if any(int(dataset.targets[by_image[i]]) != int(self.labels[i]) for i in range(1000)):
            sys.exit("the subset's labels disagree with MNIST's: not the images N-MNIST was recorded from")
        self.real_frames = [recording_frames(r) for r in self.real]

    def simulate(self, params: SaccadeParams, images) -> list[np.ndarray]:
        return [saccades(self.images[i], seed=i, params=params) for i in images]

    def score(self, params: SaccadeParams, images) -> tuple[float, float, float]:
        """Over ``images``: the mean same-image frame correlation, the mean simulated events over the mean
        real events, and the distance of the time profiles (half the L1 distance between the shares of
        events in each 10 ms: 0 same, 1 disjoint)."""
        sims = self.simulate(params, images)
        corr = np.mean([correlation(recording_frames(s), self.real_frames[i]) for s, i in zip(sims, images)])
        ratio = np.mean([s.size for s in sims]) / np.mean([self.real[i].size for i in images])
        return float(corr), float(ratio), profile_distance(sims, [self.real[i] for i in images])

    def floor(self, images) -> float:
        """Mean frame correlation of real recordings of two different images of the same class."""
        by_class: dict[int, list[int]] = {}
        for i in images:
            by_class.setdefault(int(self.labels[i]), []).append(i)
        pairs = [(a, b) for members in by_class.values() for a, b in zip(members[::2], members[1::2])]
        return float(np.mean([correlation(self.real_frames[a], self.real_frames[b]) for a, b in pairs]))


def profile(recordings: list[np.ndarray]) -> np.ndarray:
    counts = sum(np.histogram(r["t"] - r["t"][0], bins=np.arange(BINS + 1) * BIN_US)[0] for r in recordings)
    return counts / counts.sum()


def profile_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.abs(profile(a) - profile(b)).sum() / 2)


# ------------------------------------------------------------------ the fit
# The fit maximises the frame correlation less this much of the time profiles' distance: the
# correlation sums whole 105 ms windows, so only the profile says when in a window events come.
PROFILE_WEIGHT = 0.25
def with_knobs(base: SaccadeParams, k: dict) -> SaccadeParams:
    """``base`` with the fitted knobs applied (the path is N-MNIST's triangle scaled by ``amplitude``)."""
    pixel = base.pixel.replace(threshold_on=k["threshold"] * k["on_off"], threshold_off=k["threshold"] / k["on_off"])
    period = int(round(k["period_us"]))
    delay = int(round(k["delay_us"]))
    return base.replace(pixel=pixel, start=(k["start_x"], k["start_y"]),
                        path=tuple((a * k["amplitude"], b * k["amplitude"]) for a, b in NMNIST_PATH),
                        period_us=period, delay_us=delay, move_us=min(int(round(k["move_us"])), period - delay),
                        blur=k["blur"], gamma=k["gamma"])


STEPS = {"start_x": 1.0, "start_y": 1.0, "amplitude": 0.15, "period_us": 3000, "delay_us": 4000, "move_us": 10000,
         "blur": 0.3, "gamma": 0.4, "threshold": 0.05, "on_off": 0.08}
LOW = {"amplitude": 0.3, "period_us": 90_000, "delay_us": 0, "move_us": 20_000, "blur": 0.0, "gamma": 0.5,
       "threshold": 0.03, "on_off": 0.5}


def fit(cal: Calibration, base: SaccadeParams, rounds: int, images) -> SaccadeParams:
    knobs = {"start_x": base.start[0], "start_y": base.start[1], "amplitude": 1.0, "period_us": base.period_us,
             "delay_us": base.delay_us, "move_us": base.move_us, "blur": base.blur, "gamma": base.gamma,
             "threshold": (base.pixel.threshold_on * base.pixel.threshold_off) ** 0.5,
             "on_off": (base.pixel.threshold_on / base.pixel.threshold_off) ** 0.5}
    corr, _, dist = cal.score(with_knobs(base, knobs), images)
    best = corr - PROFILE_WEIGHT * dist
    steps = dict(STEPS)
    for r in range(rounds):
        for name in knobs:
            for sign in (1, -1):
                trial = dict(knobs, **{name: max(knobs[name] + sign * steps[name], LOW.get(name, -1e9))})
                try:
                    params = with_knobs(base, trial)
                except ValueError:
                    continue
                corr, _, dist = cal.score(params, images)
                if corr - PROFILE_WEIGHT * dist > best + 1e-4:
                    best, knobs = corr - PROFILE_WEIGHT * dist, trial
                    print(f"  round {r + 1}: {name} = {knobs[name]:.4g} -> correlation {corr:.4f}, profile distance "
                          f"{dist:.3f}", flush=True)
                    break
        steps = {k: v / 2 for k, v in steps.items()}
    params = with_knobs(base, knobs)
    # the ON fraction: the ratio of the two thresholds, bisected until the simulated share of ON events (as
    # N-MNIST's files count them) is the real one
    real_on = np.mean([cal.real[i]["p"].mean() for i in images])
    product = params.pixel.threshold_on * params.pixel.threshold_off
    low, high = 0.6, 1.6
    for _ in range(10):
        mid = (low * high) ** 0.5
        trial = params.replace(pixel=params.pixel.replace(threshold_on=(product * mid) ** 0.5,
                                                          threshold_off=(product / mid) ** 0.5))
        sim_on = np.mean([s["p"].mean() for s in cal.simulate(trial, images)])
        # a higher ON threshold (brightening) leaves more darkening events: more of N-MNIST's ON (inverted)
        low, high = (mid, high) if (sim_on < real_on) == trial.invert_polarity else (low, mid)
    mid = (low * high) ** 0.5
    params = params.replace(pixel=params.pixel.replace(threshold_on=(product * mid) ** 0.5,
                                                       threshold_off=(product / mid) ** 0.5))
    # the event count: scale both thresholds until the simulated mean matches the real one (bisection on log)
    low, high = 0.3, 3.0
    for _ in range(12):
        mid = (low * high) ** 0.5
        _, ratio, _ = cal.score(params.replace(pixel=params.pixel.replace(
            threshold_on=params.pixel.threshold_on * mid, threshold_off=params.pixel.threshold_off * mid)), images)
        low, high = (mid, high) if ratio > 1 else (low, mid)
    mid = (low * high) ** 0.5
    params = params.replace(pixel=params.pixel.replace(threshold_on=params.pixel.threshold_on * mid,
                                                       threshold_off=params.pixel.threshold_off * mid))
    # the background rate: scaled to the real recordings' isolated-event rate
    real_bg = np.mean([isolated_rate(cal.real[i]) for i in images[:60]])
    sim_bg = np.mean([isolated_rate(s) for s in cal.simulate(params, images[:60])])
    if sim_bg > 0:
        params = params.replace(pixel=params.pixel.replace(noise_hz=params.pixel.noise_hz * real_bg / sim_bg))
    return params


def report(cal: Calibration, params: SaccadeParams, images) -> dict:
    sims = cal.simulate(params, images)
    real = [cal.real[i] for i in images]
    corrs = [correlation(recording_frames(s), cal.real_frames[i]) for s, i in zip(sims, images)]
    return {"images": [images[0], images[-1]], "real": statistics(real), "simulated": statistics(sims),
            "profile_distance": profile_distance(sims, real),
            "frame_correlation": {"mean": float(np.mean(corrs)), "median": float(np.median(corrs)),
                                  "p10": float(np.percentile(corrs, 10))},
            "floor_real_vs_real_same_class": cal.floor(images)}


def print_report(rep: dict) -> None:
    r, s = rep["real"], rep["simulated"]
    print(f"images {rep['images'][0]}..{rep['images'][1]}   real        simulated")
    print(f"events per recording       {r['events_mean']:7.0f} ± {r['events_std']:<5.0f} {s['events_mean']:7.0f} ± "
          f"{s['events_std']:.0f}   ({(s['events_mean'] / r['events_mean'] - 1) * 100:+.1f}%)")
    print(f"ON fraction                {r['on_fraction']:7.3f}         {s['on_fraction']:7.3f}")
    print(f"same-pixel gap, 5th pct    {r['gap_p5_ms']:7.2f} ms      {s['gap_p5_ms']:7.2f} ms")
    print(f"background (isolated)      {r['background_hz']:7.2f} Hz/px   {s['background_hz']:7.2f} Hz/px")
    print("events per 10 ms (real)    " + " ".join(f"{v:.0f}" for v in r["per_10ms"]))
    print("events per 10 ms (sim)     " + " ".join(f"{v:.0f}" for v in s["per_10ms"]))
    print(f"time profile distance      {rep['profile_distance']:.3f} (half the L1 distance of the shares per 10 ms)")
    c = rep["frame_correlation"]
    print(f"frame correlation, same image: mean {c['mean']:.3f}, median {c['median']:.3f}, 10th pct {c['p10']:.3f}; "
          f"floor (two real recordings, one class): {rep['floor_real_vs_real_same_class']:.3f}")


def figure(cal: Calibration, params: SaccadeParams, images: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(images), 7, figsize=(10.5, 1.6 * len(images)))
    for row, i in enumerate(images):
        real = cal.real_frames[i].reshape(2, 3, 34, 34)
        sim = recording_frames(saccades(cal.images[i], seed=i, params=params)).reshape(2, 3, 34, 34)
        axes[row, 0].imshow(cal.images[i], cmap="gray")
        for k in range(3):
            for col, (frames, what) in enumerate(((real, "real"), (sim, "simulated"))):
                ax = axes[row, 1 + 2 * k + col]
                ax.imshow(frames[1, k] - frames[0, k], cmap="coolwarm", vmin=-3, vmax=3)
                if row == 0:
                    ax.set_title(f"{what}\nsaccade {k + 1}", fontsize=8)
        if row == 0:
            axes[row, 0].set_title("MNIST image", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("N-MNIST subset: real recordings | simulated (ON - OFF events per saccade; images the fit never saw)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", default="../shared/data/nmnist-subset", help="the N-MNIST subset")
    parser.add_argument("--mnist", default="../shared/data/mnist-train", help="MNIST's training images (IDX)")
    parser.add_argument("--fit", action="store_true", help="fit the parameters on images 0..299 first")
    parser.add_argument("--rounds", type=int, default=6, help="coordinate-descent rounds of the fit")
    parser.add_argument("--fit-every", type=int, default=3, help="fit on every n-th image of 0..299 (speed)")
    parser.add_argument("--out", type=Path, help="write OUT.json (report) and OUT.png (figure)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cal = Calibration(args.real, args.mnist)
    params = SaccadeParams()
    if args.fit:
        print(f"fitting on images {FIT.start}..{FIT.stop - 1} (every {args.fit_every}th)")
        params = fit(cal, params, args.rounds, list(FIT)[::args.fit_every])
        print("fitted:", json.dumps(params.to_dict()))
    rep = report(cal, params, list(REPORT))
    rep.update(params=params.to_dict(), fitted=args.fit, fit_images=[FIT.start, FIT.stop - 1],
               command="python training/calibrate_simulator.py " + " ".join(sys.argv[1:] if argv is None else argv),
               seconds=round(time.perf_counter() - start, 1))
    print_report(rep)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(rep, indent=1))
        figure(cal, params, [300, 301, 302, 303], args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
