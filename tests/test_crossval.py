"""k-fold cross-validation: the partition, the statistics, the protocol end to end and its card."""

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from eventfiles import write_tiny_nmnist
from stc_zoo import StcSNN
from stc_zoo import training as train
from stc_zoo.training import crossval
from stc_zoo.data import stratified_folds, stratified_subset
from stc_zoo.errors import CheckpointError
from stc_zoo.hub.card import CardResult, read_card
from stc_zoo.hub.holdout import held_out

TINY = ["--set", "channels=[4]", "--set", "hidden=8", "--set", "T=2", "--set", "ratio=2", "--batch-size", "8",
        "--threads", "1", "--cache-dir", "", "--lr", "0.01"]


@pytest.mark.parametrize("n, k", [(1000, 5), (1000, 10), (37, 4), (10, 10)])
def test_stratified_folds_partition_every_index_with_classes_spread_evenly(n, k):
    labels = np.random.default_rng(n).integers(0, 7, n)
    folds = stratified_folds(labels, k, seed=3)
    flat = sorted(i for f in folds for i in f)
    assert flat == list(range(n))  # a partition: every index once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for c in np.unique(labels):
        counts = [int((labels[f] == c).sum()) for f in folds]
        assert max(counts) - min(counts) <= 1
    assert folds == stratified_folds(labels, k, seed=3) and folds != stratified_folds(labels, k, seed=4)


def test_stratified_folds_refuse_impossible_requests():
    with pytest.raises(ValueError, match=">= 2"):
        stratified_folds([0, 1, 0], 1)
    with pytest.raises(ValueError, match="at least 5 samples"):
        stratified_folds([0, 1, 0], 5)


@pytest.mark.parametrize("n, size", [(900, 100), (900, 300), (37, 10), (37, 3), (37, 37)])
def test_stratified_subset_has_the_size_asked_with_the_class_proportions(n, size):
    labels = np.random.default_rng(n).integers(0, 7, n)
    chosen = stratified_subset(labels, size, seed=1)
    assert len(chosen) == len(set(chosen)) == size and chosen == sorted(chosen) and set(chosen) <= set(range(n))
    for c in np.unique(labels):  # each class within one recording of its share
        assert abs(int((labels[chosen] == c).sum()) - (labels == c).mean() * size) < 1
    assert chosen == stratified_subset(labels, size, seed=1)
    assert size == n or chosen != stratified_subset(labels, size, seed=2)
    with pytest.raises(ValueError, match="0..37"):
        stratified_subset(labels[:37], 38)


def test_train_limit_cuts_the_training_part_and_leaves_the_holdout_alone():
    from stc_zoo.training.config import TrainConfig, TrainError
    from stc_zoo.training.data import holdout_split

    labels = np.random.default_rng(0).integers(0, 10, 1000).tolist()
    full_kept, full_held = holdout_split(labels, TrainConfig(folds=10, fold=3, seed=1))
    kept, held = holdout_split(labels, TrainConfig(folds=10, fold=3, seed=1, train_limit=100))
    assert held == full_held and len(kept) == 100 and set(kept) < set(full_kept)
    full_kept, full_held = holdout_split(labels, TrainConfig(val_fraction=0.2, seed=1))
    kept, held = holdout_split(labels, TrainConfig(val_fraction=0.2, seed=1, train_limit=300))
    assert held == full_held and len(kept) == 300 and set(kept) < set(full_kept)
    with pytest.raises(TrainError, match="leaves only 900"):
        holdout_split(labels, TrainConfig(folds=10, fold=3, seed=1, train_limit=901))


def test_summary_uses_the_corrected_variance():
    accs = [0.95, 0.97, 0.96, 0.98, 0.94]
    s = crossval.summarize(accs)
    k, sd = 5, float(np.std(accs, ddof=1))
    half = stats.t.ppf(0.975, k - 1) * math.sqrt((1 / k + (1 / k) / (1 - 1 / k)) * sd**2)
    assert s.mean == pytest.approx(np.mean(accs)) and s.std == pytest.approx(sd)
    assert (s.low, s.high) == pytest.approx((s.mean - half, s.mean + half))
    plain = stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)
    assert s.high - s.mean > plain  # wider than the naive interval
    wild = crossval.summarize([0.9, 0.95, 0.1])  # a collapsed fold: the interval stays an accuracy's
    assert wild.low == 0.0 and wild.high == 1.0


def test_paired_comparison_tells_a_consistent_gain_from_noise():
    base = [0.95, 0.97, 0.96, 0.98, 0.94]
    better = [a + 0.02 + d for a, d in zip(base, [0.001, -0.001, 0.002, 0.0, -0.002])]
    noisy = [a + d for a, d in zip(base, [0.02, -0.02, 0.01, -0.015, 0.004])]
    assert crossval.paired(better, base).real and crossval.paired(better, base).p < 0.01
    assert not crossval.paired(noisy, base).real and crossval.paired(noisy, base).p > 0.5
    assert crossval.paired(base, base).p == 1.0 and not crossval.paired(base, base).real
    with pytest.raises(ValueError, match="same folds"):
        crossval.paired(base, base[:4])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def cv_argv(data, out, *extra):
    return ["--model", "nmnist-t4", "--data", str(data), "--out", str(out), "--folds", "3", "--epochs", "2",
            *TINY, *extra]


def test_cross_validation_end_to_end_with_export_and_card(data, tmp_path, capsys):
    out, export = tmp_path / "cv", tmp_path / "export"
    cv = train.main(cv_argv(data, out, "--export", str(export)))
    # Each fold's number is its last epoch on its own held-out fold, and the folds cover all 24 recordings.
    for i, acc in enumerate(cv["per_fold"], 1):
        last = json.loads((out / f"fold-{i}" / "metrics.jsonl").read_text().splitlines()[-1])
        assert last["epoch"] == 2 and last["val_acc"] == acc
    assert cv["samples"] == 24 and cv["fold_samples"] == [8, 8, 8] and cv["mean"] == pytest.approx(np.mean(cv["per_fold"]))
    assert json.loads((out / crossval.CV_FILE).read_text()) == cv
    assert "3-fold cross-validated accuracy" in capsys.readouterr().out
    # training/fold_costs.py finds each fold's own held-out recordings: its accuracy there is the fold's.
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "training" / "fold_costs.py"))
    row = script["fold_cost"](out / "fold-1", str(data), 64)
    assert row["recordings"] == 8 and row["accuracy"] == cv["per_fold"][0] and row["effective_macs"] > 0
    # The export is the run on every recording; its card states the cross-validated estimate.
    assert json.loads((out / "final" / train.RUN).read_text())["train"]["val_fraction"] == 0
    card, stated = read_card(export / "README.md")
    assert stated.folds == 3 and stated.samples == 24 and stated.per_fold == tuple(cv["per_fold"])
    assert stated.percent == round(cv["mean"] * 100, 2) and stated.std == pytest.approx(cv["std"])
    assert "3-fold cross-validation" in card.text and "--folds 3" in card.text and "trained on all 24" in card.text
    StcSNN.from_pretrained(export)
    # No hold-out is left to evaluate: a clear error, not a number measured on training recordings.
    with pytest.raises(CheckpointError, match="cross-validated"):
        held_out(data, stated)
    result = subprocess.run([sys.executable, "-m", "stc_zoo.cli", "evaluate", str(export), "--data", str(data),
                             "--split", "val"], capture_output=True, text=True)
    assert result.returncode == 2 and "cross-validated" in result.stderr and "--folds 3" in result.stderr


def test_a_cut_cross_validation_continues_and_refuses_another_recipe(data, tmp_path, capsys):
    out = tmp_path / "cv"
    train.main(cv_argv(data, out, "--fold", "2"))
    assert (out / "fold-2" / crossval.RESULT_FILE).is_file() and not (out / "fold-1").exists()
    stamp = (out / "fold-2" / train.FINAL).stat().st_mtime_ns
    kept = json.loads((out / "fold-2" / crossval.RESULT_FILE).read_text())
    (out / "fold-2" / crossval.RESULT_FILE).unlink()  # killed after the run, before its result was written
    cv = train.main(cv_argv(data, out))  # fold 2 is kept (its result read back), 1 and 3 are trained
    assert (out / "fold-2" / train.FINAL).stat().st_mtime_ns == stamp and len(cv["per_fold"]) == 3
    assert json.loads((out / "fold-2" / crossval.RESULT_FILE).read_text()) == kept and cv["per_fold"][1] == kept["accuracy"]
    with pytest.raises(SystemExit, match="2"):
        train.main(cv_argv(data, out, "--set", "K=2"))
    assert "holds a run of another recipe (it differs in model)" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--folds", "1"], "--folds must be at least 2"),
    (["--folds", "3", "--fold", "4"], "--fold must be in 1..3"),
    (["--fold", "1"], "--fold needs --folds"),
    (["--folds", "3", "--resume"], "without --resume"),
    (["--folds", "3", "--fold", "1", "--export", "x"], "leave out --fold"),
])
def test_cross_validation_mistakes_are_one_line(data, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit, match="2"):
        train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "x"), *TINY, *extra])
    assert message in capsys.readouterr().err


def test_card_result_of_a_cross_validation_round_trips_and_checks_itself():
    r = CardResult(accuracy=0.97, samples=1000, reader="nmnist", val_fraction=0.0, seed=1, folds=2, std=0.01,
                   per_fold=[0.96, 0.98])
    assert r.per_fold == (0.96, 0.98) and "2-fold" in r.describe() and "± 1.00" in r.stated()
    with pytest.raises(ValueError, match="2 per-fold"):
        CardResult(accuracy=0.97, samples=1000, reader="nmnist", folds=2, std=0.01, per_fold=[0.97])


def test_time_to_decision_streams_each_folds_own_held_out_recordings(data, tmp_path):
    """training/time_to_decision.py --cv: each fold model streams the recordings it held out; at the full
    window its running prediction's accuracy is the fold's own (offline) accuracy."""
    out = tmp_path / "cv"
    argv = ["--model", "nmnist-stream-20ms", "--data", str(data), "--out", str(out), "--folds", "2", "--epochs", "1",
            *TINY]
    train.main(argv)
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "training" / "time_to_decision.py"))
    for fold in (1, 2):
        model, runs = script["fold_runs"](out / f"fold-{fold}", str(data), 1000)
        assert len(runs) == 12 and model.config.input.T == 2
        m = script["measure"](runs, 20_000, 2, [20.0], [1e-9, 1.0], 1, 20.0)
        val_acc = json.loads((out / f"fold-{fold}" / "result.json").read_text())["accuracy"]
        assert m["curve"][1] == val_acc and m["at"][20.0] == m["curve"][0]
        eager, never = m["rules"][(1e-9, None)], m["rules"][(1.0, 1)]  # any confidence; none, but a 20 ms deadline
        assert eager["median_ms"] == 20.0 and eager["undecided"] == 0 and eager["correct_within"] == m["curve"][0]
        assert never["median_ms"] == 20.0 and never["accuracy"] == m["curve"][0]
        assert m["rules"][(1.0, None)]["undecided"] == 1.0 and m["rules"][(1.0, None)]["median_ms"] == 40.0
    card = tmp_path / "card"
    card.mkdir()
    (card / "README.md").write_text("# m\n\n## Results\n\nx\n\n## Configuration\n\ny\n")
    script["main"](["--cv", str(out), "--data", str(data), "--at-ms", "20", "--within-ms", "40", "--thresholds", "0.9",
                    "--card", str(card), "--plot", str(tmp_path / "ttd.png")])
    text = (card / "README.md").read_text()
    assert text.index("## Time to decision (cross-validated)") < text.index("## Configuration")
    assert "| 40 ms (the full window) |" in text and (tmp_path / "ttd.png").is_file()
    assert "| confidence >= 0.9, at 40 ms at the latest |" in text


def test_folds_that_cannot_measure_anything_are_refused(tmp_path, capsys):
    """More folds than the smallest class has recordings, or folds of a handful: refused with the reason, not
    reported as a 50% +- 50 estimate."""
    from eventfiles import write_tiny_nmnist

    data = write_tiny_nmnist(tmp_path / "d", per_class=3)
    for folds, message in (("4", "class 0 has 3 recording(s), so some folds would hold none of it"),
                           ("3", "9 recordings give folds of 3, too few")):
        with pytest.raises(SystemExit, match="2"):
            train.main(["--model", "nmnist-t4", "--data", str(data), "--out", str(tmp_path / "cv"), "--folds", folds,
                        "--cache-dir", ""])
        assert message in capsys.readouterr().err
