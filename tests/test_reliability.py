"""Nothing is lost: training killed with SIGKILL anywhere resumes to the uninterrupted result;
the compression cache survives an interrupted fill; concurrent inference is consistent.

The random-kill test has a short version that runs in CI and a long one marked ``slow``
(``pytest -m slow``).
"""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from eventfiles import write_tiny_nmnist
from stc_zoo import StcSNN

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "training" / "train.py")]
KILLER = [sys.executable, str(ROOT / "tests" / "kill_during_write.py")]
EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def args(data, out, cache, *extra):
    return ["--model", "nmnist-t4", "--data", str(data), "--out", str(out), "--cache-dir", str(cache),
            "--set", "channels=[4]", "--set", "hidden=8", "--set", "T=2", "--set", "ratio=2",
            "--batch-size", "8", "--set", "val_fraction=0.25", "--threads", "1", "--epochs", str(EPOCHS), *extra]


def metrics(out):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path):
    sa, sb = load_file(a / "last.safetensors"), load_file(b / "last.safetensors")
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert metrics(a) == metrics(b)
    assert [m["epoch"] for m in metrics(b)] == list(range(1, EPOCHS + 1))
    assert not list(b.glob("*.tmp"))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run, and how long it took."""
    out = tmp_path_factory.mktemp("whole")
    start = time.perf_counter()
    subprocess.run(TRAIN + args(data, out / "run", out / "cache"), check=True, capture_output=True)
    return out / "run", time.perf_counter() - start


def resume_until_done(data, out, cache, kills: int, seed: int, span: float) -> int:
    """Start the run, SIGKILL it ``kills`` times at random moments, resuming each time; finish it."""
    rng = random.Random(seed)
    killed = 0
    for attempt in range(kills + 1):
        extra = ["--resume"] if attempt else []
        log = open(out.parent / f"attempt{attempt}.log", "w")
        proc = subprocess.Popen(TRAIN + args(data, out, cache, *extra), stdout=log, stderr=subprocess.STDOUT)
        if attempt < kills:
            try:
                # Early enough that a run faster than the reference (warm caches) is still caught mid-way.
                proc.wait(timeout=rng.uniform(0.1, 0.6) * span)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait()
        else:
            assert proc.wait(timeout=300) == 0, (out.parent / f"attempt{attempt}.log").read_text()[-3000:]
        log.close()
    return killed


def kill_and_resume(data, tmp_path, reference, kills, seed):
    whole, seconds = reference
    killed = resume_until_done(data, tmp_path / "run", tmp_path / "cache", kills, seed, seconds)
    assert killed >= 1, "no kill landed: the test did not test anything"
    assert_same_run(whole, tmp_path / "run")


def test_random_sigkills_then_resume_equal_uninterrupted_run(data, tmp_path, reference):
    kill_and_resume(data, tmp_path, reference, kills=2, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 6))
def test_many_random_sigkills(data, tmp_path, reference, seed):
    kill_and_resume(data, tmp_path, reference, kills=6, seed=seed)


@pytest.mark.parametrize("target, nth, mode", [
    ("last.safetensors", 2, "whole"),    # epoch 2's state written, not yet renamed
    ("last.safetensors", 1, "partial"),  # epoch 1's state half written: no epoch finished
    ("best.safetensors", 1, "partial"),
    ("metrics.jsonl", 1, "whole"),       # the log rebuilt on resume
])
def test_sigkill_inside_a_checkpoint_write(data, tmp_path, reference, target, nth, mode):
    out, cache = tmp_path / "run", tmp_path / "cache"
    died = subprocess.run(KILLER + [target, str(nth), mode] + args(data, out, cache), capture_output=True)
    assert died.returncode == -signal.SIGKILL
    assert list(out.glob("*.tmp")), "the kill should leave the temp file behind"
    if (out / "last.safetensors").exists():  # whatever is in place is a whole, readable state
        load_file(out / "last.safetensors")
    subprocess.run(TRAIN + args(data, out, cache, "--resume"), check=True, capture_output=True)
    assert_same_run(reference[0], out)


def test_cache_survives_an_interrupted_fill(data, tmp_path, reference):
    out, cache = tmp_path / "run", tmp_path / "cache"
    died = subprocess.run(KILLER + ["[0-9a-f]*.safetensors", "1", "partial"] + args(data, out, cache),
                          capture_output=True)
    assert died.returncode == -signal.SIGKILL
    assert not list(cache.glob("*.safetensors")), "a half-written entry must never be in place"
    assert not (out / "run.json").exists()  # the data is prepared before the run starts: rerun it
    subprocess.run(TRAIN + args(data, out, cache), check=True, capture_output=True)
    entries = list(cache.glob("*.safetensors"))
    reference_entries = sorted((reference[0].parent / "cache").glob("*.safetensors"))
    assert reference_entries and sorted(e.name for e in entries) == [e.name for e in reference_entries]
    for mine, theirs in zip(sorted(entries), reference_entries):
        a, b = load_file(mine), load_file(theirs)
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert_same_run(reference[0], out)


def test_damaged_cache_entry_is_recomputed_with_a_warning(data, tmp_path, reference):
    cache = tmp_path / "cache"
    cache.mkdir()
    for entry in (reference[0].parent / "cache").glob("*.safetensors"):
        (cache / entry.name).write_bytes(entry.read_bytes()[:100])  # damaged outside our control
    done = subprocess.run(TRAIN + args(data, tmp_path / "run", cache), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "unreadable cache entry" in done.stderr
    assert_same_run(reference[0], tmp_path / "run")


def test_concurrent_inference_matches_one_thread():
    model = StcSNN.from_pretrained("nmnist-t4")
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(4, 3, 2, 34, 34, generator=gen) * 3 for _ in range(8)]
    with torch.no_grad():
        want = [model(x) for x in inputs]
    results: dict[tuple[int, int], torch.Tensor] = {}
    errors = []

    def worker(w):
        try:
            for rep in range(3):
                for i, x in enumerate(inputs):
                    with torch.no_grad():
                        results[w, rep * len(inputs) + i] = model(x)
        except Exception as err:  # surfaced below; a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 * 3 * len(inputs)
    for (w, k), got in results.items():
        assert torch.equal(got, want[k % len(inputs)]), (w, k)
