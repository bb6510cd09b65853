"""Starting from the zoo: a trained backbone with a new head, other safe overrides, clear refusals."""

import logging

import pytest
import torch

from stc_zoo import InputError, StcSNN
from stc_zoo.data import synthetic_events


def test_new_head_keeps_the_backbone_and_round_trips(tmp_path, caplog):
    base = StcSNN.from_pretrained("nmnist-t4")
    with caplog.at_level(logging.WARNING, logger="stc_zoo"):
        model = StcSNN.from_pretrained("nmnist-t4", num_classes=5, class_names=list("abcde"), dropout=0.2)
    assert sum("new head for 5 classes" in r.message for r in caplog.records) == 1
    c = model.config
    assert (c.network.num_classes, c.class_names, c.network.dropout) == (5, tuple("abcde"), 0.2)
    for name, tensor in base.network.state_dict().items():  # everything but the head is the trained weights
        if not name.startswith("fc2."):
            assert torch.equal(model.network.state_dict()[name], tensor), name
    assert model.network.fc2.weight.shape == (5, c.network.hidden)
    assert model.predict_proba(synthetic_events((34, 34), 500)).shape == (1, 5)
    model.save_pretrained(tmp_path / "five")
    again = StcSNN.from_pretrained(tmp_path / "five")
    assert again.config == model.config
    assert all(torch.equal(again.network.state_dict()[k], v) for k, v in model.network.state_dict().items())


def test_fewer_classes_without_names_fall_back_to_indices():
    model = StcSNN.from_pretrained("nmnist-t4", num_classes=3)
    assert model.config.class_names == () and model.config.labels == ("0", "1", "2")


def test_safe_overrides_change_no_weight():
    model = StcSNN.from_pretrained("nmnist-t4", T=8, ratio=2)
    base = StcSNN.from_pretrained("nmnist-t4")
    assert model.config.input.T == 8 and model.compress(synthetic_events((34, 34), 800)).shape[0] == 8
    assert all(torch.equal(model.network.state_dict()[k], v) for k, v in base.network.state_dict().items())


@pytest.mark.parametrize("changes, message", [
    (dict(channels=(8, 16)), "cannot change \\['channels'\\]"),
    (dict(sensor_size=(64, 64)), "cannot change \\['sensor_size'\\]"),
    (dict(num_classes=1), "num_classes must be an integer >= 2"),
    (dict(num_classes=4, class_names=["a"]), "class_names has 1 names for 4 classes"),
    (dict(colour="red"), "unknown config fields \\['colour'\\]"),
])
def test_incompatible_overrides_are_clear_errors(changes, message):
    with pytest.raises(InputError, match=message):
        StcSNN.from_pretrained("nmnist-t4", **changes)


def test_a_swapped_head_that_does_not_match_the_config_is_not_saved(tmp_path):
    model = StcSNN.from_pretrained("nmnist-t4")
    model.network.fc2 = torch.nn.Linear(model.config.network.hidden, 3)
    with pytest.raises(Exception, match="does not match its config"):
        model.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------- training from a start
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from eventfiles import write_tiny_nmnist

    return write_tiny_nmnist(tmp_path_factory.mktemp("nmnist"))


def train_args(data, out, *extra):
    return ["--model", "nmnist-t4", "--data", str(data), "--out", str(out), "--cache-dir", "", "--epochs", "1",
            "--batch-size", "8", "--set", "val_fraction=0.25", *extra]


def test_init_from_the_zoo_with_frozen_blocks_trains_only_the_classifier(data, tmp_path):
    from stc_zoo import training as train

    start = StcSNN.from_pretrained("nmnist-t4").network.state_dict()
    train.main(train_args(data, tmp_path / "ft", "--init", "nmnist-t4", "--freeze-blocks",
                          "--backbone-lr-scale", "0.5", "--set", "dropout=0.1", "--export", str(tmp_path / "export")))
    tuned = StcSNN.from_pretrained(tmp_path / "export").network.state_dict()
    for name, tensor in start.items():
        if name.startswith("blocks.") and "running_" not in name and "num_batches" not in name:
            assert torch.equal(tuned[name], tensor), f"{name} moved although the blocks were frozen"
    assert not torch.equal(tuned["fc2.weight"], start["fc2.weight"])  # the classifier trained
    assert not torch.equal(tuned["fc1.weight"], start["fc1.weight"])
    # its card reproduces both stages: the starting weights' own commands, then this run's
    from stc_zoo.hub.card import training_commands
    from stc_zoo.zoo import get_entry

    commands = training_commands(tmp_path / "export")
    assert commands[0] == "# 1. the starting weights (--init nmnist-t4), as their card gives them:"
    assert training_commands(get_entry("nmnist-t4").bundled)[-1] in commands
    assert commands[-2] == "# 2. this model, from them:" and "--init nmnist-t4" in commands[-1]


def test_init_that_needs_another_architecture_is_one_line(data, tmp_path, capsys):
    from stc_zoo import training as train

    other = tmp_path / "narrow"
    StcSNN(StcSNN.from_pretrained("nmnist-t4").config.replace(channels=(8, 16))).save_pretrained(other)
    with pytest.raises(SystemExit) as exit_:
        train.main(train_args(data, tmp_path / "x", "--init", str(other)))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--init" in err and "cannot change ['channels']" in err
    with pytest.raises(SystemExit):
        train.main(train_args(data, tmp_path / "y", "--freeze-blocks"))
    assert "--freeze-blocks needs --init" in capsys.readouterr().err


def test_stc_zoo_train_is_the_training_module(data, tmp_path, capsys):
    from stc_zoo.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "--model", "nmnist-t5", "--data", str(data)])
    assert exit_.value.code == 2 and "did you mean nmnist-t4" in capsys.readouterr().err
    assert main(["train", *train_args(data, tmp_path / "cli", "--init", "nmnist-t4")]) == 0
    assert (tmp_path / "cli" / "best.safetensors").is_file()
