"""The `stc-zoo` command line on generated event files: list, info, predict, bench, show."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eventfiles import random_events, write_aedat2_cifar10dvs, write_aedat31, write_nmnist
from stc_zoo import StcConfig, StcSNN, create_model
from stc_zoo.hub.card import read_card
from stc_zoo.cli import main
from stc_zoo.data import read_event_file
from stc_zoo.zoo import REGISTRY, get_entry


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[Path]:
    """Three generated N-MNIST-sensor recordings: .bin, .npy and a second .bin."""
    root = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(0)
    paths = [root / "a.bin", root / "b.npy", root / "c.bin"]
    for path in paths:
        events = random_events(rng, 3000, 34, 34, 300_000)
        write_nmnist(path, events) if path.suffix == ".bin" else np.save(path, events)
    return paths


def test_list_shows_every_entry_with_its_state(capsys):
    code, out, _ = cli(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == set(REGISTRY)
    for name, row in rows.items():
        c = get_entry(name).config
        assert row["T"] == c.input.T and row["params"] == f"{sum(p.numel() for p in create_model(name).parameters()):,}"
        assert row["input"].startswith(f"{c.input.sensor_size[0]}x{c.input.sensor_size[1]}")
    _, stated = read_card(get_entry("nmnist-t4").bundled / "README.md")  # what the card says, whatever it is
    assert rows["nmnist-t4"]["trained"] == "yes (bundled)" and rows["nmnist-t4"]["accuracy"] == stated.stated()
    assert "-fold cross-validation of all 1000 recordings" in rows["nmnist-t4"]["split"]
    _, stated = read_card(get_entry("nmnist-stream-20ms").bundled / "README.md")
    assert rows["nmnist-stream-20ms"]["accuracy"] == stated.stated() and stated.folds == 5
    assert "5-fold cross-validation of all 1000 recordings" in rows["nmnist-stream-20ms"]["split"]
    assert rows["dvsgesture-t4"]["trained"] == "no" and rows["dvsgesture-t4"]["accuracy"] == "-"
    code, out, _ = cli(capsys, "list")
    assert out.splitlines()[0].split() == ["name", "dataset", "T", "input", "params", "trained", "accuracy", "split"]


def test_info_gives_config_and_card_or_the_train_command(capsys):
    code, out, _ = cli(capsys, "info", "nmnist-t4")
    assert code == 0 and '"k_t": 2' in out and "library_name: stc-zoo" in out and "## Citation" in out
    code, out, _ = cli(capsys, "info", "dvsgesture-t4")
    assert code == 0 and "stc-zoo train --model dvsgesture-t4" in out and '"sensor_size"' in out
    code, _, err = cli(capsys, "info", "nmnist-t5")
    assert code == 2 and "did you mean nmnist-t4" in err


def test_predict_matches_the_library_and_reports_per_file(capsys, recordings):
    code, out, _ = cli(capsys, "predict", "nmnist-t4", *map(str, recordings), "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["file"] for r in lines] == list(map(str, recordings))
    model = StcSNN.from_pretrained("nmnist-t4").fuse_for_inference()
    for row, path in zip(lines, recordings):
        probs = model.predict_proba(read_event_file(path))[0]
        assert row["label"] == int(probs.argmax()) and row["class"] == model.config.class_names[row["label"]]
        assert row["confidence"] == pytest.approx(float(probs.max()), abs=1e-4)
        assert row["events"] == 3000 and row["latency_ms"] > 0
    code, out, _ = cli(capsys, "predict", "nmnist-t4", str(recordings[0]))
    assert code == 0 and "confidence" in out.splitlines()[0] and str(recordings[0]) in out


def test_predict_reports_a_bad_file_and_still_classifies_the_rest(capsys, recordings, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 7)  # not whole 5-byte events
    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "nmnist-t4", str(recordings[0]), str(bad), str(unknown), "--json"])
    out = capsys.readouterr()
    assert exit_.value.code == 1 and len(out.out.splitlines()) == 1
    assert "bad.bin" in out.err and "truncated" in out.err and "unknown event file format" in out.err


def test_predict_reads_both_aedat_versions(capsys, tmp_path):
    torch.manual_seed(0)
    StcSNN(StcConfig().replace(sensor_size=(128, 128), num_classes=3, T=2, spatial=4, channels=(4,), hidden=8)
           ).save_pretrained(tmp_path / "model")
    rng = np.random.default_rng(1)
    events = random_events(rng, 500, 128, 128, 200_000)
    write_aedat31(tmp_path / "g.aedat", events)
    write_aedat2_cifar10dvs(tmp_path / "c.aedat", events)
    code, out, err = cli(capsys, "predict", str(tmp_path / "model"), str(tmp_path / "g.aedat"),
                         str(tmp_path / "c.aedat"), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [r["events"] for r in rows] == [500, 500] and rows[0]["label"] == rows[1]["label"]


def test_bench_reports_latency_and_throughput(capsys):
    code, out, _ = cli(capsys, "bench", "nmnist-t4", "--runs", "3", "--warmup", "1", "--batch", "2", "--rounds", "2",
                       "--no-compile", "--json")
    result = json.loads(out)
    assert code == 0 and result["latency_ms"] > 0 and result["batch"] == 2
    assert result["throughput_per_s"] == pytest.approx(2e3 / result["batch_ms"], rel=1e-2)
    code, _, err = cli(capsys, "bench", "nmnist-t4", "--device", "cuda", "--runs", "1")
    if not torch.cuda.is_available():
        assert code == 2 and "no CUDA device" in err
    assert cli(capsys, "bench", "nmnist-t4", "--batch", "0")[0] == 2


def test_show_draws_a_figure_and_says_how_to_get_matplotlib(capsys, recordings, tmp_path, monkeypatch):
    out = tmp_path / "fig.png"
    code, printed, err = cli(capsys, "show", str(recordings[0]), "--model", "nmnist-t4", "--out", str(out))
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    code, _, err = cli(capsys, "show", str(recordings[0]), "--model", "nmnist-t4", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "pip install 'stc-zoo[viz]'" in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "stc-zoo"
    out = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "nmnist-t4" in out.stdout


def test_stream_replays_a_recording_step_by_step(capsys, recordings, tmp_path):
    folder = tmp_path / "stream-model"
    create_model("nmnist-stream-20ms").save_pretrained(folder)
    code, out, _ = cli(capsys, "stream", str(folder), str(recordings[0]), "--speed", "0", "--min-steps", "3",
                       "--threshold", "0.05")
    lines = out.splitlines()
    summary = json.loads(lines[-1])
    events = read_event_file(recordings[0])
    steps = (int(events["t"][-1]) - int(events["t"][0])) // 1000 // 20 + 1  # the last packet ends past the events
    assert code == 0 and summary["steps"] == sum(line.startswith("step ") for line in lines) >= steps - 1
    assert summary["recording_ms_at_decision"] == 60.0  # any class passes 0.05: decided at min_steps = 3 steps of 20 ms
    assert any(line.startswith("decision: ") for line in lines)
    code, _, err = cli(capsys, "stream", "nmnist-t4", str(recordings[0]))
    assert code == 2 and "duration-binned" in err
    code, _, err = cli(capsys, "stream", str(folder), str(recordings[0]), "--threshold", "2")
    assert code == 2 and "threshold" in err


def test_e2e_benchmark_script_prints_its_tables(capsys, recordings):
    """benchmarks/e2e.py runs end to end (tiny settings: it measures nothing here)."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "e2e.py"))
    script["main"](["--events", str(recordings[0]), "--rounds", "1", "--runs", "2", "--warmup", "1", "--no-compile"])
    out = capsys.readouterr().out
    for row in ("e2e: stc-zoo fast path (default)", "e2e: v0.1 default", "tonic ToFrame", "stream: all 4 steps",
                "block 1 conv 32->64 on 17x17 (sparse)", "Streaming:", "Machine:"):
        assert row in out, row


def test_sparse_dense_benchmark_script_prints_its_tables(capsys, recordings, tmp_path):
    """benchmarks/sparse_dense.py runs end to end and its density table reads the recordings given."""
    import runpy
    import shutil

    folder = tmp_path / "Train"
    for i, path in enumerate(p for p in recordings if p.suffix == ".bin"):
        (folder / str(i)).mkdir(parents=True)
        shutil.copy(path, folder / str(i))
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "sparse_dense.py"))
    script["main"](["--data", str(folder), "--every", "1", "--densities", "0.1", "--runs", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    n = len(list(folder.glob("*/*.bin")))
    for row in ("| block 0 conv 2->32 on 34x34 | 0.10 |", "| block 1 conv 32->64 on 17x17 | 0.10 |",
                f"on {n} recordings", "| block 1 |"):
        assert row in out, row


def test_stream_refuses_a_file_with_a_glitched_timestamp(capsys, recordings, tmp_path):
    folder = tmp_path / "stream-model"
    create_model("nmnist-stream-20ms").save_pretrained(folder)
    events = read_event_file(recordings[0])
    events["t"][-1] = 10**11  # the probe's file: one timestamp 28 hours on
    np.save(tmp_path / "glitch.npy", events)
    begin = time.perf_counter()
    code, out, err = cli(capsys, "stream", str(folder), str(tmp_path / "glitch.npy"), "--speed", "0")
    assert code == 2 and "beyond a stream's max_gap_us=60,000,000" in err and "step " not in out
    assert time.perf_counter() - begin < 30


def test_stream_says_what_its_decision_and_first_step_mean(capsys, recordings, tmp_path):
    folder = tmp_path / "stream-model"
    create_model("nmnist-stream-20ms").save_pretrained(folder)
    code, out, _ = cli(capsys, "stream", str(folder), str(recordings[0]), "--speed", "0")
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and "decision_ms" not in summary
    assert summary["decision_rule"].startswith("at step T = 15 (no --threshold")
    assert "warm-up:" in out and "not in the per-step times" in out


def test_bench_flags_rounds_that_disagree():
    from stc_zoo import benchmark

    calm = {"path": "a", "ms": 1.0, "x fast": 2.0, "ratio min": 1.9, "ratio max": 2.1, "ms spread": 1.1}
    shaky = {"path": "b", "ms": 1.0, "x fast": 30.0, "ratio min": 4.0, "ratio max": 30.0, "ms spread": 7.0}
    assert benchmark.noisy([calm, shaky]) == ["b"]
    stream = {"path": "stream: all 4 steps", "ms": 1.2, "x fast": 1.5, "ratio min": 1.4, "ratio max": 1.6}
    fast = {"path": "e2e: stc-zoo fast path (default)", "ms": 0.8, "x fast": 1.0, "ratio min": 1.0, "ratio max": 1.0}
    text = benchmark.render([fast, stream, shaky], {"stream_steps": 4}, 4, 5, 10)
    assert "spread over rounds" in text and "| 4.00-30.00 |" in text
    assert "too noisy to trust some ratios" in text and "b disagree by more than 1.3x" in text


def test_stream_continuous_mode_and_json_lines(capsys, recordings, tmp_path):
    """--hop: a decision per window of T steps, the API's windows; --json: nothing but JSON lines on stdout."""
    folder = tmp_path / "stream-model"
    model = create_model("nmnist-stream-20ms")
    model.save_pretrained(folder)
    parts = [read_event_file(p) for p in recordings]
    for i, part in enumerate(parts):  # three recordings one after another: 900 ms of a feed that goes on
        part["t"] += i * 300_000
    np.save(tmp_path / "feed.npy", np.concatenate(parts))
    code, out, err = cli(capsys, "stream", str(folder), str(tmp_path / "feed.npy"), "--speed", "0", "--hop", "5",
                         "--json")
    lines = [json.loads(line) for line in out.splitlines()]  # every stdout line is JSON
    windows, summary = lines[:-1], lines[-1]["summary"]
    assert code == 0 and "warm-up" in err and summary["windows"] == len(windows) == 7  # windows end at 300, 400, ..., 900 ms
    assert [w["window"] for w in windows] == list(range(len(windows)))
    assert [(w["start_ms"], w["end_ms"]) for w in windows[:2]] == [(0.0, 300.0), (100.0, 400.0)]
    session = StcSNN.from_pretrained(folder).stream_continuous(hop=5)
    feed = np.load(tmp_path / "feed.npy")
    api = session.push(feed) + session.push(now_us=int(feed["t"][-1]) + 1000)
    assert [w["top"] for w in windows] == [d.name for d in api][:len(windows)]
    assert summary["decisions"] == {name: [w["top"] for w in windows].count(name) for name in summary["decisions"]}
    assert sum(summary["decisions"].values()) == len(windows)
    code, out, _ = cli(capsys, "stream", str(folder), str(recordings[0]), "--speed", "0", "--hop", "15")
    assert code == 0 and out.splitlines()[2].startswith("window   0  t=    0.0-  300.0 ms")
    code, _, err = cli(capsys, "stream", str(folder), str(recordings[0]), "--hop", "5", "--threshold", "0.9")
    assert code == 2 and "--hop decides at the end of every window" in err
    code, out, _ = cli(capsys, "stream", str(folder), str(recordings[0]), "--speed", "0", "--threshold", "1.0",
                       "--max-steps", "3")  # a confidence of 1.0 never comes: the deadline decides, at 60 ms
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["recording_ms_at_decision"] == 60.0 and "at step 3 (60 ms) at the latest" in out
    code, _, err = cli(capsys, "stream", str(folder), str(recordings[0]), "--hop", "16")
    assert code == 2 and "hop must be an integer in 1..T (15 steps)" in err


def test_live_benchmark_script_prints_its_tables(capsys):
    """benchmarks/live.py runs end to end over loopback (tiny settings: it measures nothing here)."""
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "live.py"))
    script["main"](["--seconds", "0.3", "--rates", "20000", "--latency-rates", "20000", "--streams", "2"])
    out = capsys.readouterr().out
    for row in ("### Latency", "| nmnist-stream-20ms, random events at 18k events/s (no --data), step outputs | 1 |",
                "### Highest sustained rate", "| DVS128-sized network, uniform random events on 128x128 | 1 |",
                "### Concurrent streams at 1x", "| nmnist-stream-20ms, random events at 18k events/s (no --data) | 2 |",
                "Machine:"):
        assert row in out, row
    rows = [line for line in out.splitlines() if line.startswith("| nmnist") or line.startswith("| DVS128")]
    assert len(rows) == 7 and all(line.split(" | ")[-2] == "0" for line in rows)  # nothing lost at 20k events/s


def test_every_command_that_computes_takes_threads_as_train_does(capsys):
    from stc_zoo.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    with_model = [name for name, p in sub.items() if any(a.dest == "model" for a in p._actions)]
    assert {"predict", "evaluate", "profile", "stream", "export", "bench"} <= set(with_model)
    for name in with_model:
        assert any(a.dest == "threads" for a in sub[name]._actions), name
    before = torch.get_num_threads()
    try:
        code, _, _ = cli(capsys, "info", "nmnist-t4", "--threads", "1")
        assert code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for argv in (["evaluate", "nmnist-t4", "--data", "x", "--threads", "0"],
                 ["train", "--model", "nmnist-t4", "--data", "x", "--threads", "-2"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "threads >= 1" in capsys.readouterr().err
