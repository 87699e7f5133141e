"""Debian's headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
null-separated JSON on file descriptors 3 and 4), so the UI test needs no browser download, no
driver binary and no websocket library."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, binary: str, width: int = 1600, height: int = 1000):
        to_read, self._to_write = os.pipe()
        self._from_read, from_write = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="aunet-chromium-")
        self.size = (width, height)

        def on_fds_3_and_4():  # in the child; dup first, in case a pipe end already is fd 3 or 4
            a, b = os.dup(to_read), os.dup(from_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            preexec_fn=on_fds_3_and_4, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_read)
        os.close(from_write)
        self._buffer = b""
        self._id = 0

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_read, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium closed its DevTools pipe (exit {self.proc.poll()})")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:  # events and other replies are not ours
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> str:
        """A new tab at ``url``; returns its session."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session, width=self.size[0], height=self.size[1],
                  deviceScaleFactor=1, mobile=False)
        return session

    def js(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def text(self, session: str) -> str:
        return self.js(session, "document.body ? document.body.innerText : ''") or ""

    def wait_for(self, session: str, expression: str, timeout: float = 60.0):
        """Poll a JavaScript expression until it is truthy; its last value either way."""
        end = time.monotonic() + timeout
        while True:
            value = self.js(session, expression)
            if value or time.monotonic() > end:
                return value
            time.sleep(0.3)

    def screenshot(self, session: str, path) -> None:
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(self.call("Page.captureScreenshot", session)["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_write)
        os.close(self._from_read)
        shutil.rmtree(self.profile, ignore_errors=True)
