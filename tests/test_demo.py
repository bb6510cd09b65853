"""`make demo` runs: the trained model on real recordings when present, synthetic events otherwise."""


import pytest

from eventfiles import SUBSET
from stc_zoo import demo



def test_demo_on_synthetic_events(tmp_path, capsys):
    demo.main(["--data", str(tmp_path / "nothing"), "--samples", "3", "--runs", "2"])
    out = capsys.readouterr().out
    assert "trained" in out and "SYNTHETIC" in out and "end to end" in out and "accuracy" not in out


@pytest.mark.skipif(not SUBSET.is_dir(), reason="../shared/data/nmnist-subset not present")
def test_demo_on_held_out_real_recordings(capsys):
    demo.main(["--data", str(SUBSET), "--samples", "10", "--runs", "2"])
    out = capsys.readouterr().out
    assert "validation hold-out" in out
    correct = int(out.split("accuracy on these 10: ")[1].split("/")[0])
    assert correct >= 8  # 99% on the hold-out; 8 leaves room for a different CPU's rounding
