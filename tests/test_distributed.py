"""Two CPU ranks (torchrun, gloo) train to the weights of the documented single-process equivalent.

torch.nn.SyncBatchNorm refuses CPU tensors, so each DDP rank normalises its own B samples; the
single-process equivalent of ``torchrun --nproc_per_node 2 ... --batch-size B`` is therefore
``--batch-size 2B --set ghost_batches=2`` (BatchNorm over every other sample, the losses averaged),
not a plain batch of 2B. Rank r takes samples r, r+2, ... of each epoch's one seeded permutation,
which is exactly ghost batch r of the single process's batch. BatchNorm's running statistics are
not compared: DDP keeps rank 0's (it broadcasts them), the single process updates them per ghost batch.
"""

import shutil
import subprocess
import sys
import warnings

from safetensors.torch import load_file

from eventfiles import write_tiny_nmnist
from stc_zoo import training as train

COMMON = ["--model", "nmnist-t4", "--set", "channels=[4]", "--set", "hidden=8", "--set", "surrogate=arctan", "--set", "T=2", "--set", "ratio=2",
          "--set", "shift=0", "--set", "val_fraction=0", "--epochs", "2", "--lr", "0.01", "--threads", "1",
          "--cache-dir", ""]


def parameters(path):
    return {k: v for k, v in load_file(path).items() if "running_" not in k and "num_batches" not in k}



def two_ranks(data, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "stc_zoo.train", *COMMON, "--data", str(data), "--out", str(out),
                           "--batch-size", "4"], capture_output=True, text=True, timeout=240)


def test_two_gloo_ranks_match_one_process_with_ghost_batches(tmp_path):
    data = write_tiny_nmnist(tmp_path / "data", per_class=8)  # 24 recordings: 3 batches of 8 per epoch
    ddp = tmp_path / "ddp"
    done = two_ranks(data, ddp)
    if done.returncode != 0 and "Signal 6 (SIGABRT)" in done.stderr:
        # Seen twice in about 100 runs, only inside a full pytest session: a gloo rank aborted (SIGABRT); the
        # cause was not found (gloo's connection set-up or teardown racing is suspected, see
        # pytorch/gloo#514). One fresh try; any other failure, or a second abort, fails the test.
        warnings.warn(f"a gloo rank aborted; retrying once:\n{done.stderr[-1500:]}")
        shutil.rmtree(ddp)
        done = two_ranks(data, ddp)
    assert done.returncode == 0, done.stderr[:4000] + "\n...\n" + done.stderr[-2000:]
    assert "2 process(es) on cpu" in done.stdout
    train.main([*COMMON, "--data", str(data), "--out", str(tmp_path / "one"), "--batch-size", "8",
                "--set", "ghost_batches=2"])
    train.main([*COMMON, "--data", str(data), "--out", str(tmp_path / "plain"), "--batch-size", "8"])

    got, want = parameters(ddp / train.FINAL), parameters(tmp_path / "one" / train.FINAL)
    plain = parameters(tmp_path / "plain" / train.FINAL)
    assert got.keys() == want.keys() and len(got) > 4
    worst = max((got[k] - want[k]).abs().max().item() for k in got)
    other = max((plain[k] - want[k]).abs().max().item() for k in got)
    print(f"largest difference: ranks vs ghost batches {worst:.3g}, plain batch vs ghost batches {other:.3g}")
    assert worst < 1e-5, f"ranks and ghost batches differ by {worst}"
    # The test can fail: a plain batch of 8 (BatchNorm over all 8) trains to other weights.
    assert other > 100 * max(worst, 1e-7)
