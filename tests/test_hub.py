"""from_pretrained against a real Hub-compatible server (olah on 127.0.0.1) through the real client.

Each client runs in a fresh interpreter with HF_ENDPOINT pointed at the server and its own
HF_HOME (see hubserver.py); nothing is mocked and nothing leaves the machine.
"""

import hashlib
import logging
import shutil
from pathlib import Path

import pytest
import torch

from hub_client import digest
from hubserver import HubServer, free_port, run_client
from stc_zoo import StcConfig, StcSNN
from stc_zoo.hub import checksums
from stc_zoo.zoo import get_entry

TINY = StcConfig().replace(sensor_size=(13, 11), num_classes=3, T=3, ratio=2, channels=(4,), hidden=8)
BUNDLED = get_entry("nmnist-t4").bundled


def save_checkpoint(model: StcSNN, folder: Path, card_from: Path | None = None) -> Path:
    model.save_pretrained(folder)
    if card_from is not None:
        shutil.copyfile(card_from / "README.md", folder / "README.md")
    checksums.write(folder)
    return folder


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The server with: stc-zoo/nmnist-t4 (v1 = the bundled checkpoint, main = a retrained one),
    acme/tiny, and acme/corrupt (its weights do not match its SHA256SUMS)."""
    root = tmp_path_factory.mktemp("hub")
    server = HubServer(root)
    v1 = StcSNN.from_pretrained(BUNDLED)
    v2 = StcSNN.from_pretrained(BUNDLED)
    with torch.no_grad():
        v2.network.fc2.weight.add_(0.01)
    server.v1_commit = server.publish("stc-zoo/nmnist-t4", BUNDLED, tag="v1")
    server.publish("stc-zoo/nmnist-t4", save_checkpoint(v2, root / "v2", card_from=BUNDLED))
    torch.manual_seed(0)
    tiny = StcSNN(TINY)
    server.publish("acme/tiny", save_checkpoint(tiny, root / "tiny"))
    corrupt = save_checkpoint(tiny, root / "corrupt")
    data = bytearray((corrupt / "model.safetensors").read_bytes())
    data[-3] ^= 0x40  # one bit of one weight, as a damaged transfer would deliver it
    (corrupt / "model.safetensors").write_bytes(bytes(data))
    server.publish("acme/corrupt", corrupt)
    server.digests = {"v1": digest(v1), "v2": digest(v2), "tiny": digest(tiny)}
    server.start()
    yield server
    server.stop()


def test_first_download_then_cached_reload_with_the_server_stopped(tmp_path):
    server = HubServer(tmp_path / "server")
    tiny = StcSNN(TINY)
    server.publish("acme/tiny", save_checkpoint(tiny, tmp_path / "tiny"))
    server.start()
    home = tmp_path / "hf"
    try:
        first = run_client(server.endpoint, home, "acme/tiny")
    finally:
        server.stop()
    assert first["ok"], first
    assert first["digest"] == digest(tiny)
    assert Path(first["folder"]).is_relative_to(home) and "models--acme--tiny" in first["folder"]

    # The server is gone: huggingface_hub falls back to its cache, online mode or offline.
    for offline in (False, True):
        again = run_client(server.endpoint, home, "acme/tiny", offline=offline)
        assert again["ok"] and again["digest"] == digest(tiny) and again["folder"] == first["folder"], again
    # A repo never downloaded is not in the cache: a clear error, not a hang or a partial model.
    missing = run_client(server.endpoint, home, "acme/other")
    assert missing["error"] == "HubError" and "acme/other" in missing["message"], missing

    # A zoo name with its Hub unreachable loads the bundled copy and says so once, however often it loads.
    bundled = run_client(server.endpoint, tmp_path / "hf2", "nmnist-t4", calls=3)
    assert bundled["ok"] and Path(bundled["folder"]) == BUNDLED, bundled
    assert len(bundled["warnings"]) == 1 and "bundled" in bundled["warnings"][0]
    # ...but never for a pinned revision: that would be a silent substitute.
    pinned = run_client(server.endpoint, tmp_path / "hf2", "nmnist-t4", revision="v1")
    assert pinned["error"] == "HubError" and "v1" in pinned["message"], pinned


def test_zoo_name_resolves_to_its_hub_repo_and_revisions_pin(hub, tmp_path):
    home = tmp_path / "hf"
    main = run_client(hub.endpoint, home, "nmnist-t4")
    assert main["ok"] and main["digest"] == hub.digests["v2"] and main["warnings"] == [], main
    assert "models--stc-zoo--nmnist-t4" in main["folder"]
    for rev in ("v1", hub.v1_commit):
        old = run_client(hub.endpoint, home, "nmnist-t4", revision=rev)
        assert old["ok"] and old["digest"] == hub.digests["v1"], (rev, old)
        assert old["folder"].endswith(hub.v1_commit)
    by_id = run_client(hub.endpoint, home, "stc-zoo/nmnist-t4", revision="v1")
    assert by_id["digest"] == hub.digests["v1"]
    # Both revisions are cached now; offline, each still loads its own weights.
    assert run_client(hub.endpoint, home, "nmnist-t4", offline=True, revision="v1")["digest"] == hub.digests["v1"]
    assert run_client(hub.endpoint, home, "nmnist-t4", offline=True)["digest"] == hub.digests["v2"]
    bad = run_client(hub.endpoint, home, "nmnist-t4", revision="no-such-tag")
    assert bad["error"] == "HubError" and "no-such-tag" in bad["message"], bad


def test_missing_repo_and_untrained_zoo_entries_fail_clearly(hub, tmp_path):
    missing = run_client(hub.endpoint, tmp_path, "acme/missing")
    assert missing["error"] == "HubError", missing
    assert "acme/missing" in missing["message"] and "no such repository" in missing["message"]
    untrained = run_client(hub.endpoint, tmp_path, "dvsgesture-t4")
    assert untrained["error"] == "WeightsUnavailableError", untrained
    assert "stc-zoo train --model dvsgesture-t4" in untrained["message"]
    typo = run_client(hub.endpoint, tmp_path, "nmnist-t5")
    assert typo["error"] == "CheckpointError" and "did you mean nmnist-t4" in typo["message"], typo


def test_corrupted_downloads_are_refused_and_force_download_repairs_the_cache(hub, tmp_path):
    home = tmp_path / "hf"
    corrupt = run_client(hub.endpoint, home, "acme/corrupt")
    assert corrupt["error"] == "CheckpointError", corrupt
    assert "model.safetensors" in corrupt["message"] and "SHA-256 does not match" in corrupt["message"]
    assert "force_download=True" in corrupt["message"]

    good = run_client(hub.endpoint, home, "acme/tiny")
    assert good["ok"] and good["digest"] == hub.digests["tiny"]
    blob = (Path(good["folder"]) / "model.safetensors").resolve()  # the cache's blob behind the snapshot link
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0x01
    blob.write_bytes(bytes(data))
    damaged = run_client(hub.endpoint, home, "acme/tiny")
    assert damaged["error"] == "CheckpointError" and "acme/tiny" in damaged["message"], damaged
    repaired = run_client(hub.endpoint, home, "acme/tiny", force_download=True)
    assert repaired["ok"] and repaired["digest"] == hub.digests["tiny"], repaired


def test_cache_dir_and_local_files_only(hub, tmp_path):
    cache = tmp_path / "elsewhere"
    not_yet = run_client(hub.endpoint, tmp_path / "hf", "acme/tiny", cache_dir=str(cache), local_files_only=True)
    assert not_yet["error"] == "HubError" and "not in the cache" in not_yet["message"], not_yet
    got = run_client(hub.endpoint, tmp_path / "hf", "acme/tiny", cache_dir=str(cache))
    assert got["ok"] and Path(got["folder"]).is_relative_to(cache)
    again = run_client(hub.endpoint, tmp_path / "hf", "acme/tiny", cache_dir=str(cache), local_files_only=True)
    assert again["ok"] and again["digest"] == hub.digests["tiny"]


def test_an_unreachable_endpoint_is_a_clear_error_for_a_hub_id(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_client(dead, tmp_path, "acme/tiny")
    assert out["error"] == "HubError" and "acme/tiny" in out["message"], out


def test_bundled_fallback_is_logged_once_in_process(caplog):
    # conftest makes this process offline: the Hub "cannot be reached".
    from stc_zoo.hub import resolve as hub_module

    hub_module._fallbacks_logged.discard("nmnist-t4")
    with caplog.at_level(logging.WARNING, logger="stc_zoo"):
        for _ in range(3):
            model = StcSNN.from_pretrained("nmnist-t4")
    assert model.checkpoint_folder == BUNDLED
    notes = [r.getMessage() for r in caplog.records if "bundled" in r.getMessage()]
    assert len(notes) == 1 and "nmnist-t4" in notes[0]


def test_a_missing_local_folder_is_not_mistaken_for_a_repo(tmp_path):
    from stc_zoo import CheckpointError

    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        StcSNN.from_pretrained(str(tmp_path / "no" / "such" / "folder"))


# ------------------------------------------------------------------ a misbehaving server (issue 21)
@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    from fakehub import FakeHub

    monkeypatch.setenv("STC_ZOO_HUB_DEADLINE", "4")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "3")
    torch.manual_seed(0)
    folder = save_checkpoint(StcSNN(TINY), tmp_path / "served")
    servers = []

    def serve(mode):
        servers.append(FakeHub(folder, mode).start())
        return servers[-1]

    yield serve
    for server in servers:
        try:
            server.stop()
        except OSError:
            pass


def test_the_fake_hub_serves_a_loadable_checkpoint(fake_hub, tmp_path):
    out = run_client(fake_hub("ok").endpoint, tmp_path / "hf", "acme/tiny")
    assert out["ok"], out


@pytest.mark.parametrize("mode, match, seconds", [
    ("trickle", r"model\.safetensors: the download did not finish within 4 s", 20),  # 1 KiB/s, for ever
    ("huge", r"model\.safetensors: the server offers 5,368,709,120 bytes, more than", 10),  # refused unread
    ("cut", r"could not be used|cannot be reached|RemoteProtocolError|Consistency", 120),  # half, then cut
    ("garbled-api", r"could not be used", 20),  # API JSON of the wrong shape
    ("dies-after-api", r"cannot be reached|could not be used|did not finish within 4 s", 20),
])
def test_every_failure_of_the_hub_is_a_hub_error_and_zoo_names_fall_back(fake_hub, tmp_path, monkeypatch, mode, match,
                                                                       seconds):
    if mode == "cut":  # let huggingface_hub's retries run out before the deadline would
        monkeypatch.setenv("STC_ZOO_HUB_DEADLINE", "100")
    server = fake_hub(mode)
    out = run_client(server.endpoint, tmp_path / "hf", "acme/tiny")
    assert out["error"] == "HubError" and "acme/tiny" in out["message"], out
    import re

    assert re.search(match, out["message"]), out["message"]
    assert out["seconds"] < seconds, out
    if mode == "dies-after-api":
        server = fake_hub(mode)  # a new one for the zoo name
    zoo = run_client(server.endpoint, tmp_path / "hf2", "nmnist-t4")
    assert zoo["ok"] and Path(zoo["folder"]) == BUNDLED, zoo
    assert any("bundled" in w for w in zoo["warnings"]), zoo


@pytest.fixture
def upload_hub(monkeypatch):
    """A Hub on 127.0.0.1 that takes uploads (uploadhub.py), set as the client's endpoint."""
    from huggingface_hub import constants
    from uploadhub import UploadHub

    hubs = []

    def serve(refuse=None):
        hubs.append(UploadHub(refuse).start())
        monkeypatch.setattr(constants, "ENDPOINT", hubs[-1].endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the suite runs offline; this server is on 127.0.0.1
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        return hubs[-1]

    yield serve
    for hub in hubs:
        hub.stop()


def test_push_to_hub_uploads_what_save_pretrained_writes_and_it_loads_back(upload_hub, tmp_path):
    hub = upload_hub()
    torch.manual_seed(0)
    model = StcSNN(TINY)
    model.push_to_hub("me/tiny", token="hf_test")
    model.save_pretrained(tmp_path / "local")
    uploaded = hub.repos["me/tiny"]
    assert sorted(uploaded) == sorted(p.name for p in (tmp_path / "local").iterdir())
    # The card names the repo where the local one names the folder; config and card are the same bytes. The
    # weights are the same tensors (safetensors writes its header's metadata in no fixed order, so not always
    # the same bytes), and the uploaded SHA256SUMS lists the uploaded files' own digests.
    local = {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()}
    assert uploaded["config.json"] == local["config.json"]
    assert uploaded["README.md"] == local["README.md"].replace(str(tmp_path / "local").encode(), b"me/tiny")
    from safetensors.torch import load as load_tensors

    up, mine = load_tensors(uploaded["model.safetensors"]), load_tensors(local["model.safetensors"])
    assert up.keys() == mine.keys() and all(torch.equal(up[k], mine[k]) for k in up)
    for line in uploaded["SHA256SUMS"].decode().splitlines():
        digest_, name = line.split(maxsplit=1)
        assert hashlib.sha256(uploaded[name]).hexdigest() == digest_, name
    assert hub.validated == 1 and not [u for u in hub.unknown if u.startswith("POST")]
    back = tmp_path / "downloaded"
    back.mkdir()
    for name, data in uploaded.items():
        (back / name).write_bytes(data)
    loaded = StcSNN.from_pretrained(back)  # checked against its SHA256SUMS on the way
    assert digest(loaded.network) == digest(model.network)


def test_save_pretrained_with_push_uploads_and_a_refused_upload_keeps_the_saved_folder(upload_hub, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError

    torch.manual_seed(1)
    model = StcSNN(TINY)
    hub = upload_hub()
    model.save_pretrained(tmp_path / "a", push_to_hub=True, repo_id="me/a", token="hf_test")
    assert sorted(hub.repos["me/a"]) == sorted(p.name for p in (tmp_path / "a").iterdir())
    hub = upload_hub(refuse=403)  # a token without write access
    with pytest.raises(HfHubHTTPError, match="403"):
        model.save_pretrained(tmp_path / "b", push_to_hub=True, repo_id="me/b", token="hf_test")
    assert hub.repos.get("me/b", {}) == {}
    assert digest(StcSNN.from_pretrained(tmp_path / "b").network) == digest(model.network)  # the work is kept
