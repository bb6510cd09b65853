"""A Hub-compatible server on 127.0.0.1 for the tests: olah serving local git repositories offline.

olah (PyPI) is a self-hosted Hugging Face Hub mirror. With ``offline = true`` and a
``mirrors-path`` it answers the Hub API (``/api/models/<repo>/revision/<rev>``, ``resolve/``)
from git repositories laid out as ``<mirrors>/models/<org>/<name>``: branches, tags and commit
hashes are revisions, exactly as on the Hub. Nothing leaves the machine.

Clients run in subprocesses (``run_client``) because huggingface_hub reads ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` when it is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).with_name("hub_client.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "stc-zoo tests", "GIT_AUTHOR_EMAIL": "tests@stc-zoo.invalid",
           "GIT_COMMITTER_NAME": "stc-zoo tests", "GIT_COMMITTER_EMAIL": "tests@stc-zoo.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class HubServer:
    """olah on a free port of 127.0.0.1, serving the git repositories under ``root/mirrors``."""

    def __init__(self, root: Path):
        self.root = root
        self.mirrors = root / "mirrors"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, repo_id: str, folder: Path, tag: str | None = None) -> str:
        """Commit ``folder``'s files as the new head of ``repo_id``'s main branch; returns the commit hash."""
        repo = self.mirrors / "models" / repo_id
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True)
            git(repo, "init", "-q", "-b", "main")
        for old in repo.iterdir():
            if old.name != ".git":
                old.unlink()
        for f in folder.iterdir():
            shutil.copyfile(f, repo / f.name)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"upload {folder.name}")
        if tag:
            git(repo, "tag", tag)
        return git(repo, "rev-parse", "HEAD")

    def start(self) -> HubServer:
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.root / "cache"}"\nmirrors-path = ["{self.mirrors}"]\n'
            "metadata-cache-ttl = 0\n"  # a new commit is visible at once
            "[accessibility]\noffline = true\n")
        self.log = open(self.root / "olah.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-c", "from olah.server import cli; cli()", "-c", str(config)],
                                        cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/api/models/none/none/revision/main", timeout=1)
            except urllib.error.HTTPError:
                return self  # it answers (404/401 for a missing repo): it is up
            except OSError:
                time.sleep(0.2)
                continue
            return self
        self.stop()
        raise RuntimeError("olah did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
            self.log.close()


def run_client(endpoint: str, hf_home: Path, source: str, offline: bool = False, calls: int = 1, **kwargs) -> dict:
    """``StcSNN.from_pretrained(source, **kwargs)`` in a fresh interpreter pointed at ``endpoint``.

    Returns what hub_client.py prints: the loaded state's digest, the folder it came from and the
    warnings logged, or the error's type and message.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, str(CLIENT), json.dumps({"source": source, "calls": calls, "kwargs": kwargs})],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"hub_client failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])
