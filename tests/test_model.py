"""StcSNN: shapes, input checks, BN folding, save/load through the Hub mixin, the zoo registry."""

import dataclasses
import json
import shlex

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from eventfiles import SUBSET, random_events
from stc_zoo import (CheckpointError, InputError, StcConfig, StcSNN, WeightsUnavailableError, create_model,
                     list_models)
from stc_zoo.hub import checksums
from stc_zoo.hub.card import read_card
from stc_zoo.config import FORMAT_VERSION
from stc_zoo.data import NMNIST, stratified_folds
from stc_zoo.data.compressed import compress_dataset
from stc_zoo.evaluation import accuracy
from stc_zoo import training as train
from stc_zoo.zoo import get_entry


TINY = StcConfig().replace(sensor_size=(13, 11), num_classes=3, T=3, ratio=2, split_by="time", spatial=2,
                 decay=0.8, channels=(4, 6), hidden=8, K=3, k_t=2)


def randomise(model: StcSNN) -> StcSNN:
    """Trained-looking parameters and BN statistics, so spikes fire and folding has work to do."""
    torch.manual_seed(1)
    with torch.no_grad():
        for block in model.network.blocks:
            block.conv.weight.mul_(3)
            block.bn.running_mean.uniform_(-0.2, 0.2)
            block.bn.running_var.uniform_(0.5, 1.5)
            block.bn.weight.uniform_(0.8, 1.5)
            block.mix.weight.add_(torch.randn_like(block.mix.weight) * 0.3)
        model.network.fc1.weight.mul_(4)
    return model.eval()


def events_batch(n=4):
    rng = np.random.default_rng(0)
    return [random_events(rng, 300 + 50 * i, 13, 11, 20_000) for i in range(n)]


def test_forward_shapes_and_predict():
    model = randomise(StcSNN(TINY))
    x = model.compress(events_batch())
    assert x.shape == (3, 4, 2, 6, 7) and x.dtype == torch.float32
    logits = model(x)
    assert logits.shape == (4, 3)
    probs = model.predict_proba(events_batch())
    torch.testing.assert_close(probs, torch.softmax(logits, -1))
    assert model.predict(events_batch()).tolist() == logits.argmax(-1).tolist()
    assert model.predict_proba(events_batch()[0]).shape == (1, 3)


def test_gradients_reach_every_parameter():
    model = randomise(StcSNN(TINY)).train()
    loss = torch.nn.functional.cross_entropy(model(model.compress(events_batch())), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(3, 2, 2, 6), "got \\(3, 2, 2, 6\\)"),          # rank 4
    (torch.zeros(4, 2, 2, 6, 7), "\\(3, 'B', 2, 6, 7\\)"),      # wrong T
    (torch.zeros(3, 2, 2, 7, 6), "got \\(3, 2, 2, 7, 6\\)"),    # wrong sensor size
    (torch.zeros(3, 2, 2, 6, 7, dtype=torch.int64), "floating-point"),
    (torch.full((3, 2, 2, 6, 7), float("nan")), "NaN"),
])
def test_bad_inputs_are_clear_errors(bad, match):
    with pytest.raises(InputError, match=match):
        StcSNN(TINY)(bad)


def test_fuse_for_inference_keeps_the_logits():
    model = randomise(StcSNN(TINY)).double()
    x = model.compress(events_batch()).double()
    before = model(x)
    model.fuse_for_inference()
    assert model.network.bn_folded and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), before, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("fused", [False, True])
def test_save_and_load_round_trip_gives_identical_logits(tmp_path, fused):
    model = randomise(StcSNN(TINY))
    if fused:
        model.fuse_for_inference()
    model.save_pretrained(tmp_path / "ck")
    assert {p.name for p in (tmp_path / "ck").iterdir()} == {"config.json", "model.safetensors", "SHA256SUMS",
                                                              "README.md"}
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert saved["format_version"] == FORMAT_VERSION and "bn_folded" not in saved
    loaded = StcSNN.from_pretrained(tmp_path / "ck")
    assert loaded.config == model.config and not loaded.training and loaded.network.bn_folded is fused
    x = model.compress(events_batch())
    assert torch.equal(loaded(x), model(x))


def test_config_json_round_trip_and_config_is_immutable():
    assert StcConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(dataclasses.FrozenInstanceError):
        TINY.input.T = 5
    assert TINY.replace(T=5).input.T == 5 and TINY.input.T == 3


def test_format_version_1_configs_still_load(tmp_path):
    """Version 1 was one flat object with bn_folded (nmnist-t4 was bundled in it until 2026-11-25)."""
    flat = {**dataclasses.asdict(TINY.input), **dataclasses.asdict(TINY.network), "class_names": [],
            "bn_folded": True, "format_version": 1}
    assert StcConfig.from_dict(json.loads(json.dumps(flat))) == TINY
    with pytest.raises(CheckpointError, match="unknown config fields \\['n_heads'\\]"):
        StcConfig.from_dict({**flat, "n_heads": 2})


@pytest.fixture()
def checkpoint(tmp_path):
    StcSNN(TINY).save_pretrained(tmp_path)
    return tmp_path


def edit_config(folder, section=None, **changes):
    """Change config.json (top level or one section) and re-sign it, as a careless hand edit would."""
    path = folder / "config.json"
    data = json.loads(path.read_text())
    (data[section] if section else data).update(changes)
    path.write_text(json.dumps(data))
    checksums.write(folder)


def test_newer_format_version_is_refused(checkpoint):
    edit_config(checkpoint, format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="config.json.*newer"):
        StcSNN.from_pretrained(checkpoint)


def test_unknown_config_field_is_refused(checkpoint):
    edit_config(checkpoint, n_heads=4)
    with pytest.raises(CheckpointError, match="unknown config fields \\['n_heads'\\]"):
        StcSNN.from_pretrained(checkpoint)


def test_config_that_changes_shapes_is_refused(checkpoint):
    edit_config(checkpoint, "network", hidden=9)
    with pytest.raises(CheckpointError, match="model.safetensors.*shapes.*fc1.weight"):
        StcSNN.from_pretrained(checkpoint)


def test_missing_and_extra_tensors_are_refused(checkpoint):
    path = checkpoint / "model.safetensors"
    state = load_file(path)
    state.pop("fc2.bias")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, path)
    checksums.write(checkpoint)
    with pytest.raises(CheckpointError, match="missing \\['fc2.bias'\\], unexpected \\['extra.weight'\\]"):
        StcSNN.from_pretrained(checkpoint)


def test_truncated_weights_and_missing_files_are_refused(checkpoint):
    path = checkpoint / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        StcSNN.from_pretrained(checkpoint)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        StcSNN.from_pretrained(checkpoint)
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        StcSNN.from_pretrained(checkpoint)


def test_zoo_entries_build_and_untrained_ones_say_how_to_train():
    assert list_models() == ["cifar10dvs-t4", "dvsgesture-t4", "nmnist-lif-t4", "nmnist-stream-20ms", "nmnist-t4"]
    for name in list_models():
        model = create_model(name)
        c = model.config
        assert c.input.T == (15 if "stream" in name else 4)
        assert model(torch.zeros(c.input.T, 1, 2, *c.input.output_size)).shape == (1, c.network.num_classes)
    for name in ("dvsgesture-t4", "cifar10dvs-t4"):  # never trained on their real recordings here
        with pytest.raises(WeightsUnavailableError, match=f"stc-zoo train --model {name}"):
            StcSNN.from_pretrained(name)
    with pytest.raises(KeyError, match="nmnist-t4"):
        create_model("nmnist-t5")


def test_bundled_nmnist_t4_loads_offline_with_an_honest_card(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = StcSNN.from_pretrained("nmnist-t4")
    assert model.config == get_entry("nmnist-t4").config and not model.training
    card = (get_entry("nmnist-t4").bundled / "README.md").read_text()
    assert "1,000-recording subset of N-MNIST" in card and "cross-validation" in card


def card_command(text: str) -> str:
    """The command a card's result comes from: the last line of its ``## Training`` block (the lines above it,
    comments and the starting weights' own commands, say how what it started from was made)."""
    return [line for line in text.split("## Training")[1].split("```")[1].strip().splitlines()
            if not line.startswith("#")][-1]


def log_of(text: str) -> dict:
    """The run log of a card's command: ``training/logs/<its --out folder's name>.json``."""
    argv = shlex.split(card_command(text))
    return json.loads((LOGS / f"{Path(argv[argv.index('--out') + 1]).name}.json").read_text())


def bundled_card():
    card, stated = read_card(get_entry("nmnist-t4").bundled / "README.md")
    return card, stated, card_command(card.text)


def test_bundled_nmnist_t4_states_a_cross_validated_estimate_that_its_command_reproduces():
    """Every number on the card comes from the command on it: its folds, seed and recipe, and the
    exported weights' architecture. (Re-running it takes ~40 min here: training/RESULTS.md.)"""
    card, stated, command = bundled_card()
    assert stated.folds >= 5 and stated.samples == 1000 and len(stated.per_fold) == stated.folds
    assert round(float(np.mean(stated.per_fold)) * 100, 2) == stated.percent
    assert stated.std == pytest.approx(float(np.std(stated.per_fold, ddof=1)))
    assert f"{stated.percent:.2f}% ± {stated.std * 100:.2f}" in card.text and "trained on all 1000" in card.text
    argv = shlex.split(command)
    assert argv[:2] == ["stc-zoo", "train"]
    args = train.parse_args(argv[2:])
    config, recipe = train.resolve_configs(args)
    assert args.folds == stated.folds and recipe.seed == stated.seed and args.export is not None
    assert config == StcSNN.from_pretrained("nmnist-t4").config == get_entry("nmnist-t4").config
    assert "1,000-recording subset of N-MNIST" in card.text


LOGS = Path(__file__).resolve().parents[1] / "training" / "logs"


@pytest.mark.parametrize("name", ["nmnist-t4", "nmnist-stream-20ms", "nmnist-lif-t4"])
def test_every_number_a_bundled_card_states_is_its_run_log(name):
    """The card's per-fold accuracies, mean, spread, seed and command are those of the cross-validation run
    that produced them (training/logs/<name>-cv<K>.json, copied from the run's cv.json)."""
    card, stated = read_card(get_entry(name).bundled / "README.md")
    log = log_of(card.text)
    assert [round(a, 6) for a in stated.per_fold] == [round(a, 6) for a in log["per_fold"]]
    assert (stated.folds, stated.seed, stated.samples) == (log["folds"], log["seed"], log["samples"])
    assert stated.percent == round(log["mean"] * 100, 2) and stated.std == pytest.approx(log["std"])
    assert log["command"] in card.text


@pytest.mark.slow
@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_one_fold_of_the_bundled_nmnist_t4_recipe_gives_its_logged_number_again(tmp_path):
    """Fold 1 of the card's command, rerun with the thread count the log's run used (1, two folds at a time),
    gives the logged accuracy (about 3 minutes)."""
    from stc_zoo.training import main as train_main

    card, stated, command = bundled_card()
    log = log_of(card.text)
    argv = shlex.split(command)[2:]
    argv = [a for a in argv if a != "--export"]
    cut = argv.index(next(a for a in argv if a.startswith("runs/") and a.endswith("/export")))
    argv = argv[:cut] + argv[cut + 1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "cv")
    train_main([*argv, "--fold", "1", "--threads", "1", "--workers", "1", "--cache-dir", ""])
    got = json.loads((tmp_path / "cv" / "fold-1" / "result.json").read_text())["accuracy"]
    assert got == pytest.approx(log["per_fold"][0], abs=1e-9)


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_bundled_nmnist_t4_card_names_the_recordings_it_was_trained_and_cross_validated_on():
    _, stated, _ = bundled_card()
    data = NMNIST(SUBSET, stated.source_split)
    assert len(data) == stated.samples
    folds = stratified_folds(data.targets, stated.folds, stated.seed)
    assert sorted(len(f) for f in folds) == [stated.samples // stated.folds] * stated.folds
    # Trained on every one of them: a model that had not been would not fit them this well.
    model = StcSNN.from_pretrained("nmnist-t4")
    X, y = compress_dataset(data, model.pipeline)
    assert accuracy(model.network, X, y) > stated.accuracy
