"""What a decision costs, in one run on the same recordings: a compressed model at its T, the same
weights uncompressed (T = T x ratio steps of one fine bin), the same network as a SpikingJelly user
writes it at that T (PLIF neurons, the weights copied; its spikes counted the same way) and a plain
ANN of the same shape (one dense pass). Prints Markdown for docs/METRICS.md.

    PYTHONPATH=/tmp/sjsite .venv/bin/python benchmarks/costs.py --data ../shared/data/nmnist-subset/Train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from stc_zoo import StcSNN, benchmark, metrics
from stc_zoo.data import read_event_file


# An energy PROXY, not a measurement: 32-bit float operations at 45 nm (M. Horowitz, "Computing's energy
# problem (and what we can do about it)", ISSCC 2014): add 0.9 pJ, multiply 3.7 pJ, so a MAC 4.6 pJ and an
# accumulate 0.9 pJ. Real chips differ (memory access dominates); it only weighs MACs against ACs.
PJ_MAC, PJ_AC = 4.6, 0.9


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="nmnist-t4", help="zoo name or checkpoint folder (default nmnist-t4)")
    p.add_argument("--data", type=Path, required=True, help="a folder of recordings (*/*.bin)")
    p.add_argument("--every", type=int, default=1, help="take every N-th recording (default 1: all)")
    p.add_argument("--batch-size", type=int, default=50)
    return p


def uncompressed(model: StcSNN) -> StcSNN:
    """The same weights on T x ratio steps of one fine bin each (no temporal compression)."""
    c = model.config.input
    twin = StcSNN(model.config.replace(T=c.T * c.ratio, ratio=1))
    twin.network.load_state_dict(model.network.state_dict())
    return twin.eval()


def _shared_rate(a: torch.Tensor) -> torch.Tensor:
    """SpikingJelly's PLIF has one 1/tau = sigmoid(w) per layer: the w whose rate is the mean of ours."""
    return torch.logit(torch.sigmoid(a).mean())


def spikingjelly_costs(model: StcSNN, events: list, T: int) -> dict | None:
    """Operations and activity of ``model``'s weights in SpikingJelly's network (``benchmark.spikingjelly_network``:
    Conv-BN-PLIF blocks, PLIF with one 1/tau per layer, the mean of ours, K = 1, hard reset, no temporal mixing) on ToFrame(T) frames,
    counted by ``metrics.layer_costs`` on the inputs its conv and linear layers receive. None without SpikingJelly."""
    import tonic.transforms

    sj = benchmark.spikingjelly_network(model)
    if sj is None:
        return None
    from spikingjelly.activation_based import neuron

    convs = [m for m in sj.net if isinstance(m, nn.Conv2d)]
    bns = [m for m in sj.net if isinstance(m, nn.BatchNorm2d)]
    linears = [m for m in sj.net if isinstance(m, nn.Linear)]
    plifs = [m for m in sj.net if isinstance(m, neuron.ParametricLIFNode)]
    net = model.network
    with torch.no_grad():
        for conv, bn, block, plif in zip(convs, bns, net.blocks, plifs):
            conv.weight.copy_(block.conv.weight)
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(bn, name).copy_(getattr(block.bn, name))
            plif.w.copy_(_shared_rate(block.lif.a))
        for ours, theirs in zip((net.fc1, net.fc2), linears):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
        plifs[-1].w.copy_(_shared_rate(net.lif.a))
    totals = {"dense": 0.0, "macs": 0.0, "acs": 0.0, "active": 0.0, "outputs": 0.0}
    hooks = []

    def count(kind):
        def hook(module, args):
            c = metrics.layer_costs(module, args[0], kind)
            totals["dense"] += float(c["dense"].sum())
            totals["macs" if kind == "current" else "acs"] += float(c["nonzero" if kind == "current" else "spike_acs"].sum())
        return hook

    for i, layer in enumerate([*convs, *linears]):
        hooks.append(layer.register_forward_pre_hook(count("current" if i == 0 else "spikes")))
    for plif in plifs:
        hooks.append(plif.register_forward_hook(lambda m, a, out: totals.update(
            active=totals["active"] + float((out != 0).sum()), outputs=totals["outputs"] + out.numel())))
    W, H = model.config.input.sensor_size
    to_frame = tonic.transforms.ToFrame(sensor_size=(W, H, 2), n_event_bins=T)
    with torch.no_grad():
        for e in tqdm(events, desc="SpikingJelly", leave=False):
            sj(torch.from_numpy(to_frame(e).astype("float32")).unsqueeze(1))
    for h in hooks:
        h.remove()
    n = len(events)
    return {"dense": totals["dense"] / n, "effective_macs": totals["macs"] / n, "effective_acs": totals["acs"] / n,
            "activation_sparsity": 1 - totals["active"] / totals["outputs"]}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    model = StcSNN.from_pretrained(args.model).eval()
    files = sorted(args.data.glob("*/*.bin"))[::args.every]
    events = [read_event_file(f) for f in tqdm(files, desc="reading", leave=False)]
    c = model.config.input
    rows = []
    for label, m in ((f"{args.model}: T = {c.T}, {c.T * c.ratio} fine bins compressed {c.ratio}:1, K = "
                      f"{model.config.network.K}", model),
                     (f"the same weights uncompressed: T = {c.T * c.ratio} steps of one fine bin", uncompressed(model))):
        m.fuse_for_inference()
        batches = (m.compress(events[i:i + args.batch_size]) for i in range(0, len(events), args.batch_size))
        p = metrics.profile(m.network, batches)
        rows.append({"model": label, "steps": p.steps, "dense": p.dense, "effective_macs": p.effective_macs,
                     "effective_acs": p.effective_acs, "membrane_updates": p.membrane_updates,
                     "activation_sparsity": p.activation_sparsity})
    unfolded = StcSNN.from_pretrained(args.model).eval()  # SpikingJelly's blocks keep their BatchNorm
    sj = spikingjelly_costs(unfolded, events, c.T * c.ratio)
    if sj is not None:
        neurons = rows[0]["membrane_updates"] // rows[0]["steps"]  # the same neurons, every step
        rows.append({"model": f"SpikingJelly, the same network and weights at T = {c.T * c.ratio} on ToFrame "
                              "(PLIF: K = 1, hard reset, no temporal mixing)", "steps": c.T * c.ratio,
                     "dense": sj["dense"], "effective_macs": sj["effective_macs"], "effective_acs": sj["effective_acs"],
                     "membrane_updates": neurons * c.T * c.ratio, "activation_sparsity": sj["activation_sparsity"]})
    ann = rows[0]["dense"] / rows[0]["steps"]
    rows.append({"model": "a plain ANN of the same shape (one dense pass)", "steps": 1, "dense": ann,
                 "effective_macs": ann, "effective_acs": 0.0, "membrane_updates": 0, "activation_sparsity": None})
    print(f"Command: `benchmarks/costs.py --data {args.data}{f' --every {args.every}' if args.every > 1 else ''}`\n")
    print(f"Per recording, averaged over {len(events)} recordings of {args.data}; operations as `stc_zoo.metrics` "
          "counts them (effective = non-zero inputs through non-zero weights; a spike count of n as n ACs).\n")
    print("| model | steps | dense MACs | effective MACs | effective ACs | membrane updates | activation sparsity "
          "| energy proxy (45 nm figures), uJ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        sparsity = "-" if r["activation_sparsity"] is None else f"{r['activation_sparsity']:.4f}"
        energy = (r["effective_macs"] * PJ_MAC + r["effective_acs"] * PJ_AC) / 1e6
        print(f"| {r['model']} | {r['steps']} | {r['dense']:,.0f} | {r['effective_macs']:,.0f} | "
              f"{r['effective_acs']:,.0f} | {r['membrane_updates']:,.0f} | {sparsity} | {energy:.2f} |")
    print(f"\nThe energy column is a proxy, not a measurement: effective MACs x {PJ_MAC} pJ + effective ACs x {PJ_AC} pJ "
          "(32-bit float add 0.9 pJ, multiply 3.7 pJ at 45 nm; Horowitz, ISSCC 2014); it leaves out memory access "
          "and the neurons' own updates, which dominate on real hardware.")


if __name__ == "__main__":
    main()
