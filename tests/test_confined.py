"""Confined machines: a read-only install with no writable home (a container with a read-only root file
system), and a disk that fills up while a checkpoint is saved. Root can write through chmod, so these run
in a private mount namespace (``unshare -m``) with read-only bind mounts and a tiny tmpfs; they skip where
that is not allowed."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def confined(script: str, mounts: str, **env) -> subprocess.CompletedProcess:
    """``script`` (Python) run by this interpreter after ``mounts`` (shell) in a private mount namespace."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private mount namespace) to make read-only mounts root cannot write")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode().strip()}")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    clean.update(env)
    code = f"{mounts} && exec {sys.executable} -c {shlex_quote(textwrap.dedent(script))}"
    return subprocess.run(["unshare", "-m", "bash", "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True,
                          timeout=300)


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def read_only(*paths: Path) -> str:
    return " && ".join(f"mount --bind {p} {p} && mount -o remount,bind,ro {p}" for p in paths)


def test_a_read_only_install_without_a_writable_home_still_runs_the_cpu_kernels(tmp_path):
    """Numba can cache neither beside the package nor in the home: the kernels compile into a temporary folder,
    said once, instead of the import dying with 'cannot cache function ... no locator available'."""
    home = tmp_path / "home"
    home.mkdir()
    script = """
        import numpy as np
        from stc_zoo.kernels import compress_numba, snn_numba   # their decorators ran: this was the crash
        from stc_zoo.simulate import frames_to_events
        events = frames_to_events(np.random.default_rng(0).random((3, 4, 4)), [0, 10, 20])
        print("events", len(events))
    """
    done = confined(script, read_only(ROOT, home), HOME=str(home))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "events" in done.stdout
    assert done.stderr.count("Numba cannot write its cache") == 1 and "NUMBA_CACHE_DIR" in done.stderr
    # a NUMBA_CACHE_DIR the user gives is used as before, without the warning (importing is enough to see it)
    cache = tmp_path / "numba-cache"
    check = "import numba; from stc_zoo.kernels import compress_numba; print(numba.config.CACHE_DIR)"
    done = confined(check, read_only(ROOT, home), HOME=str(home), NUMBA_CACHE_DIR=str(cache))
    assert done.returncode == 0 and "Numba cannot write" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip() == str(cache)


def test_a_cache_warmed_at_build_time_serves_a_read_only_container(tmp_path, warmed_numba_cache):
    """stc-zoo warmup fills NUMBA_CACHE_DIR (the image build); a container whose install, home and cache are all
    read-only then loads every kernel a prediction needs from it: no compilation (Numba's own cache-miss count)."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    shutil.copytree(warmed_numba_cache, cache)
    script = """
        import numba
        from stc_zoo import StcSNN
        from stc_zoo.data import synthetic_events
        from stc_zoo.kernels import compress_numba, snn_numba
        model = StcSNN.from_pretrained("nmnist-t4")
        print("label", int(model.predict(synthetic_events((34, 34), 3000))[0]))
        kernels = [f for m in (compress_numba, snn_numba) for f in vars(m).values() if hasattr(f, "stats")]
        print("compiled", sum(len(f.stats.cache_misses) for f in kernels), "loaded", sum(len(f.stats.cache_hits) for f in kernels))
    """
    # the default policy (no STC_ZOO_COMPILE): the cache holds the fast path, so it is what runs
    done = confined(script, read_only(ROOT, home, cache), HOME=str(home), NUMBA_CACHE_DIR=str(cache), STC_ZOO_COMPILE="")
    assert done.returncode == 0, done.stderr[-2000:]
    compiled, loaded = (int(v) for v in done.stdout.split("compiled ")[1].split(" loaded "))
    assert compiled == 0 and loaded > 0 and "Numba cannot write" not in done.stderr, done.stdout + done.stderr[-2000:]


def test_a_full_disk_while_saving_is_an_error_naming_the_folder_and_the_old_checkpoint_stays(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
        import os, sys
        from stc_zoo import StcConfig, StcSNN, CheckpointError
        config = StcConfig.from_dict({{"format_version": 2, "input": {{"sensor_size": [34, 34], "T": 4, "ratio": 4}},
                                       "network": {{"num_classes": 10, "channels": [4, 8], "hidden": 16}}}})
        folder = "{disk}/ckpt"
        StcSNN(config).save_pretrained(folder)
        before = {{n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}}
        with open("{disk}/filler", "wb", buffering=0) as f:  # fill the disk up to a few kilobytes
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        os.truncate("{disk}/filler", os.path.getsize("{disk}/filler") - 8192)
        bigger = StcSNN(config.replace(hidden=256))
        try:
            bigger.save_pretrained(folder)
        except CheckpointError as err:
            print("refused:", err)
        after = {{n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}}
        print("intact" if after == before else "CHANGED")
    """
    done = confined(script, f"mount -t tmpfs -o size=1m tmpfs {disk}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"refused: {disk}/ckpt: the checkpoint could not be saved" in done.stdout, done.stdout + done.stderr[-1000:]
    assert "the checkpoint already there is untouched" in done.stdout and "intact" in done.stdout
