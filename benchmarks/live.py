"""Live streams on this machine, over loopback UDP: latency from a datagram leaving the sender to the
step output that holds it, the highest event rate a model keeps up with, and how many streams one
process serves at 1x. Prints Markdown for BENCHMARKS.md.

    .venv/bin/python benchmarks/live.py --data ../shared/data/nmnist-subset

A sender process plays each feed in SPIF words (180 events per datagram, as ``stc-zoo send``) at its
own timestamps' pace and logs when every datagram left (``time.perf_counter``: one monotonic clock for
both processes). This process receives each feed with ``UdpSource`` (one receiver thread each) and
pushes every packet into a session of its own (one serving thread per stream), logging when each
step's output was out. From the two logs:

* **close latency**: a step ``[s, e)`` can only finish once an event at or after ``e`` arrives; the
  time from the datagram holding that first event leaving the sender to the step's output. This is
  the cost of the package (receive, decode, compress, network) and the lag of the queue;
* **packet latency**: every datagram, to the output of the step its last event lies in. It adds the
  wait for the step to end (up to one step, 20 ms here): what a user of the decision sees.

A row **keeps up** when no datagram was lost (by the OS or the bounded queue) and the lag does not
grow: the median close latency of the run's last quarter lies less than half a step (10 ms) above
its first quarter's ("lag growth"; when compute falls behind, the queue and the lag grow for as long
as the feed lasts). "Sent at" is the rate the sender
really achieved (it shares the machine's 2 cores with the receiver: a camera would not), so a row
whose sender fell behind its feed's rate says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from stc_zoo import StcConfig, StcSNN, benchmark
from stc_zoo.data import NMNIST
from stc_zoo.data.events import EVENT_DTYPE
from stc_zoo.sources import UdpSource
from stc_zoo.sources.spif import encode
from stc_zoo.zoo import get_entry

PACKET_EVENTS = 180  # events per datagram: 180 x 8 bytes fit a 1500-byte Ethernet frame


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="N-MNIST root (Train/<digit>/*.bin): real recordings for the 1x feeds "
                   "(default: random events at N-MNIST's mean rate)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of every feed (default 4 s)")
    p.add_argument("--rates", default="100000,200000,500000,1000000,1500000,2000000,3000000,4000000,6000000",
                   help="event rates (events/s) of the rate sweep, ascending; a model's sweep stops at its first "
                        "rate it does not keep up with")
    p.add_argument("--latency-rates", default="50000,200000,500000",
                   help="rates of the DVS128-sized network's latency table")
    p.add_argument("--streams", default="1,2,4,8,16,32,64", help="concurrent 1x streams, ascending; the sweep "
                   "stops at the first count not kept up with")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the kernels are single-threaded)")
    return p


# ------------------------------------------------------------------ feeds
def real_feed(root: Path | None, seconds: float, offset: int) -> np.ndarray:
    """Real N-MNIST recordings back to back (each starts where the previous ended), ``seconds`` long; random
    events at N-MNIST's rate without a root."""
    if root is None:
        return random_feed((34, 34), 18_000, seconds, seed=offset)
    data = NMNIST(root, "train")
    parts, t = [], 0
    i = offset
    while t < seconds * 1e6:
        e = data.load_events(i % len(data))
        e = e.copy()
        e["t"] = e["t"] - e["t"][0] + t
        parts.append(e)
        t = int(e["t"][-1]) + 1
        i += 1
    feed = np.concatenate(parts)
    return feed[feed["t"] < seconds * 1e6]


def random_feed(sensor: tuple[int, int], rate: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Uniform random events on ``sensor`` at ``rate`` events/s (Poisson arrivals) for ``seconds``."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    e = np.empty(n, dtype=EVENT_DTYPE)
    e["t"] = np.sort(rng.integers(0, int(seconds * 1e6), n))
    e["x"], e["y"] = rng.integers(0, sensor[0], n), rng.integers(0, sensor[1], n)
    e["p"] = rng.integers(0, 2, n)
    return e


# ------------------------------------------------------------------ the sender (its own process)
def sender_job(feed: np.ndarray, port: int, folder: Path, i: int) -> dict:
    """``feed`` encoded as datagrams of PACKET_EVENTS events for benchmarks/udp_sender.py."""
    cuts = np.arange(0, len(feed), PACKET_EVENTS)
    words = np.frombuffer(encode(feed), dtype="<u4")  # two words per event
    bounds = np.append(2 * cuts, len(words)).astype(np.int64)
    times = np.stack([feed["t"][cuts], feed["t"][np.append(cuts[1:], len(feed)) - 1]], axis=1).astype(np.int64)
    job = {"port": port, "log": str(folder / f"sent{i}.npy")}
    for name, array in (("words", words), ("bounds", bounds), ("times", times)):
        job[name] = str(folder / f"{name}{i}.npy")
        np.save(job[name], array)
    return job


# ------------------------------------------------------------------ one run: feeds in, sessions out
def serve(source: UdpSource, session, out: list) -> None:
    """Push every packet of ``source`` into ``session``; log (end_us, time out) of every output."""
    for packet in source:
        outputs = session.push(packet.events, now_us=packet.until_us)
        now = time.perf_counter()
        out += [(o.end_us, now) for o in outputs]


def run(model: StcSNN, feeds: list[np.ndarray], hop: int | None = None) -> dict:
    """Serve ``feeds`` concurrently (one UDP port, receiver thread and session each); their latencies."""
    tmp = Path(tempfile.mkdtemp(prefix="stc-live-"))
    sensor = model.config.input.camera_size
    # A feed ends 0.3 s after its last datagram (no feed here pauses that long).
    sources = [UdpSource("127.0.0.1", 0, sensor, timeout_s=0.3, wait_s=30, queue_datagrams=4096) for _ in feeds]
    sessions = [model.stream_continuous(hop=hop, origin_us=int(f["t"][0])) if hop else
                model.stream(origin_us=int(f["t"][0])) for f in feeds]
    outs = [[] for _ in feeds]
    threads = [threading.Thread(target=serve, args=(s, z, o)) for s, z, o in zip(sources, sessions, outs)]
    for t in threads:
        t.start()
    jobs = [sender_job(f, s.address[1], tmp, i) for i, (f, s) in enumerate(zip(feeds, sources))]
    (tmp / "job.json").write_text(json.dumps({"feeds": jobs}))
    subprocess.run([sys.executable, str(Path(__file__).with_name("udp_sender.py")), str(tmp / "job.json")], check=True)
    for t in threads:
        t.join()
    step_us = model.config.input.step_us
    close, packet, lost, sent_total, first_sent, last_sent, growth = [], [], 0, 0, np.inf, -np.inf, -np.inf
    for feed, source, out, job in zip(feeds, sources, outs, jobs):
        sent = np.load(job["log"])
        sent_total += len(sent)
        first_sent, last_sent = min(first_sent, sent["sent_s"][0]), max(last_sent, sent["sent_s"][-1])
        lost += len(sent) - source.stats.datagrams  # by the OS (a full socket buffer) or the bounded queue
        t0 = int(feed["t"][0])
        ends = np.array([e for e, _ in out], dtype=np.int64) + t0
        times = np.array([s for _, s in out])
        closer = np.searchsorted(sent["last_t"], ends, side="left")  # first datagram reaching each end
        ok = closer < len(sent)
        lat = times[ok] - sent["sent_s"][closer[ok]]
        close += list(lat)
        quarter = max(1, len(lat) // 4)
        if len(lat):  # how much the lag grew from the run's first quarter to its last
            growth = max(growth, float(np.median(lat[-quarter:]) - np.median(lat[:quarter])))
        if hop is None and len(out):  # every datagram, to the output of the step holding its last event
            step = (sent["last_t"] - t0) // step_us
            done = step < len(out)
            packet += list(times[step[done]] - sent["sent_s"][done])
    shutil.rmtree(tmp)
    ms = lambda v, q: round(1e3 * float(np.percentile(v, q)), 2) if len(v) else None  # noqa: E731
    result = {"streams": len(feeds), "outputs": sum(len(o) for o in outs), "datagrams": sent_total, "lost": lost,
              "events_per_s": sum(len(f) for f in feeds) / ((feeds[0]["t"][-1] - feeds[0]["t"][0]) / 1e6),
              "sent_per_s": sum(len(f) for f in feeds) / (last_sent - first_sent),  # what the sender achieved
              "close_p50": ms(close, 50), "close_p99": ms(close, 99), "packet_p50": ms(packet, 50),
              "packet_p99": ms(packet, 99), "growth_ms": round(1e3 * growth, 2) if close else None}
    result["keeps_up"] = lost == 0 and bool(close) and growth * 1e6 < step_us / 2
    return result


# ------------------------------------------------------------------ models
def dvs128_model() -> StcSNN:
    """dvsgesture-t4's network on duration-binned input (20 ms steps), random weights scaled so that its
    layers fire (random weights alone are nearly silent, which would flatter the timing)."""
    config = get_entry("dvsgesture-t4").config
    config = StcConfig.from_dict({**config.to_dict(), "input": {**config.to_dict()["input"], "split_by": "duration",
                                                                "step_us": 20_000}})
    torch.manual_seed(0)
    model = StcSNN(config).eval()
    with torch.no_grad():
        for block in model.network.blocks:
            block.conv.weight.mul_(3)
            block.bn.bias.uniform_(0.0, 1.0)
        model.network.fc1.weight.mul_(4)
    return model.fuse_for_inference()


def firing(model: StcSNN, feed: np.ndarray) -> str:
    """Share of neurons firing per step in each spiking layer on the first T steps of ``feed``."""
    c = model.config.input
    window = feed[feed["t"] < feed["t"][0] + c.T * c.step_us]
    with torch.no_grad():
        out = model.network.forward_steps(model.compress([window]), record=True)
    return ", ".join(f"{name} {100 * float((s > 0).float().mean()):.1f}%" for name, s in out.spikes.items())


def warm(model: StcSNN, feed: np.ndarray) -> None:
    for session in (model.stream(), model.stream_continuous(hop=1)):
        session.push(feed[feed["t"] < feed["t"][0] + 40 * model.config.input.step_us])


# ------------------------------------------------------------------ tables
def row(label: str, r: dict) -> str:
    return (f"| {label} | {r['streams']} | {r['events_per_s']:,.0f} | {r['sent_per_s']:,.0f} | {r['outputs']:,} | "
            f"{r['close_p50']} | "
            f"{r['close_p99']} | {r['packet_p50'] if r['packet_p50'] is not None else '-'} | "
            f"{r['packet_p99'] if r['packet_p99'] is not None else '-'} | {r['growth_ms']} | {r['lost']} | "
            f"{'yes' if r['keeps_up'] else '**no**'} |")


HEADER = ("| feed | streams | events/s (all streams) | sent at (measured) | outputs | close latency p50 ms | p99 | "
          "packet latency p50 ms | p99 | lag growth ms | datagrams lost | keeps up |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    nmnist = StcSNN.from_pretrained("nmnist-stream-20ms").fuse_for_inference()
    dvs = dvs128_model()
    feed = real_feed(args.data, args.seconds, 0)
    warm(nmnist, feed)
    warm(dvs, random_feed((128, 128), 100_000, 1.0))
    print(f"Command: `{' '.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])}`\n")
    print(f"Machine: {benchmark.environment()}\n")
    source = ("real N-MNIST recordings of the subset back to back" if args.data else
              "random events at 18k events/s (no --data)")
    print(f"Feeds of {args.seconds:g} s over 127.0.0.1, {PACKET_EVENTS} events per datagram, sent at 1x by a "
          f"separate process. The DVS128-sized network: dvsgesture-t4's (128x128 pooled to 32x32, channels 64-128-128)"
          f" on 20 ms steps, random weights scaled to fire ({firing(dvs, random_feed((128, 128), 200_000, 1.0))} of "
          "neurons per step on uniform random events at 200k events/s).\n")
    print("### Latency\n")
    print(HEADER)
    print(row(f"nmnist-stream-20ms, {source}, step outputs", run(nmnist, [feed])))
    print(row("nmnist-stream-20ms, the same feed, continuous --hop 5 (3 windows side by side), window decisions",
              run(nmnist, [feed], hop=5)))
    print(row("nmnist-stream-20ms, the same feed, continuous --hop 1 (15 windows side by side), window decisions",
              run(nmnist, [feed], hop=1)))
    for rate in [float(r) for r in args.latency_rates.split(",")]:
        print(row(f"DVS128-sized network, uniform random events at {rate:,.0f}/s, step outputs",
                  run(dvs, [random_feed((128, 128), rate, args.seconds)])))
    print("\n### Highest sustained rate (one stream, step outputs; the sweep stops at the first rate not kept up)\n")
    print(HEADER)
    for name, model, sensor in (("nmnist-stream-20ms", nmnist, (34, 34)), ("DVS128-sized network", dvs, (128, 128))):
        for rate in [float(r) for r in args.rates.split(",")]:
            r = run(model, [random_feed(sensor, rate, args.seconds)])
            print(row(f"{name}, uniform random events on {sensor[0]}x{sensor[1]}", r), flush=True)
            if not r["keeps_up"]:
                break
    print("\n### Concurrent streams at 1x (one process, a receiver thread and a serving thread per stream)\n")
    print(HEADER)
    for n in [int(s) for s in args.streams.split(",")]:
        r = run(nmnist, [real_feed(args.data, args.seconds, 37 * i) for i in range(n)])
        print(row(f"nmnist-stream-20ms, {source}", r), flush=True)
        if not r["keeps_up"]:
            break


if __name__ == "__main__":
    main()
