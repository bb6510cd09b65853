"""Headless Chromium driven over the Chrome DevTools Protocol, for the documentation site's browser check.

``Browser().open(url)`` loads a page in a real browser and records what a reader's console would show
(uncaught exceptions, ``console.error``, failed loads); ``evaluate(js)`` runs a script in the page and
returns its value. Chromium comes from Debian's packages (``.ci/run`` installs it); ``find_chromium()`` is
None where it is absent. Only the protocol's WebSocket is a library (``websockets``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time

from websockets.sync.client import connect


def find_chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium with one page; a context manager."""

    def __init__(self, executable: str, timeout_s: float = 120.0):  # a hang guard: a loaded machine is slow
        self.profile = tempfile.mkdtemp(prefix="stc-zoo-chromium-")
        self.process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.timeout_s = timeout_s
        endpoint = self._endpoint()
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(endpoint, max_size=None, open_timeout=timeout_s))
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _endpoint(self) -> str:
        """The browser's DevTools WebSocket address, from the line Chromium prints when it listens."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("Chromium did not start its DevTools endpoint")

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile are recorded."""
        message = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description")))
                                                            for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')})")
        elif method == "Page.loadEventFired":
            self.loaded = True

    def wait(self, condition, what: str) -> None:
        """Pump events until ``condition()`` holds (a guard against a hang, not a timing: it returns at once)."""
        deadline = time.monotonic() + self.timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.timeout_s:.0f} s for {what}")
            try:
                self._event(json.loads(self.ws.recv(timeout=0.2)))
            except TimeoutError:
                pass

    def open(self, url: str) -> None:
        self.loaded = False
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait(lambda: self.loaded, f"{url} to load")

    def evaluate(self, script: str):
        result = self.call("Runtime.evaluate", {"expression": script, "returnByValue": True, "awaitPromise": True},
                           session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{script[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def until(self, script: str, what: str):
        """Evaluate ``script`` until it returns something truthy (hang guard as ``wait``); that value."""
        value = None

        def ready():
            nonlocal value
            try:
                value = self.evaluate(script)
            except RuntimeError as err:  # the page is between two documents: ask again
                if "navigated or closed" not in str(err) and "context" not in str(err).lower():
                    raise
                return False
            return bool(value)

        self.wait(ready, what)
        return value

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stack.close()
        finally:
            self.process.kill()
            self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
