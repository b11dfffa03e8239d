"""A C{twistd -n cc --web} container as an OS process, on RabbitMQ, for browser tests.

The browser is driven from the test's thread, so the page must be served by
another process: a blocking client on the reactor thread that serves it deadlocks.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.launch import REPO, TIMEOUT, cc_command, clean_env
from tests.rabbit import URL

#: What the web view logs once it listens (port 0 picks a free one).
LISTENING = re.compile(r"observer web view at (http://127\.0\.0\.1:\d+/)")
ION_RPC = Path(sys.executable).parent / "ion-rpc"
POLL = 0.02  # another OS process writes the log: look every 20 ms, up to TIMEOUT


class WebView:
    """A container of system C{sysname} started with C{files} and the web view, its
    actions on; its log goes to C{tmp/cc.log}."""

    def __init__(self, tmp: Path, sysname: str, *files: str) -> None:
        self.sysname = sysname
        self.log = tmp / "cc.log"
        self.token_file = tmp / "token"
        ready = tmp / "cc.ready"
        command = cc_command("web", "-n", "--broker", URL, "-s", sysname)
        self.cid = command[command.index("--container-id") + 1]
        command += ["--ready-file", str(ready), "--web", "127.0.0.1:0"]
        env = clean_env(ION_WEB__ACTIONS="true", ION_WEB__TOKEN_FILE=str(self.token_file))
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*command, *files], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.base = ""
        deadline = time.monotonic() + TIMEOUT
        while not (ready.exists() and self.base):
            found = LISTENING.search(self.log.read_text())
            self.base = found.group(1).rstrip("/") if found else ""
            if self.proc.poll() is not None:
                pytest.fail(f"container exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"no web view and ready file after {TIMEOUT}s:\n{self.output()}")
            time.sleep(POLL)

    def output(self) -> str:
        return self.log.read_text()

    def url(self, path: str = "/") -> str:
        return self.base + path

    @property
    def token(self) -> str:
        """The actions' token, which the web view writes to C{web.token_file}."""
        if not self.token_file.exists():
            pytest.fail(f"the web view wrote no token to web.token_file:\n{self.output()}")
        return self.token_file.read_text().strip()

    def get(self, path: str) -> Any:
        """The JSON at C{path} (a twin under C{/api/})."""
        with urllib.request.urlopen(self.url(path), timeout=5) as reply:
            return json.load(reply)

    def post(self, path: str, body: dict[str, Any]) -> str:
        """POST C{body} as JSON with the token; the reply's text (an error status raises)."""
        request = urllib.request.Request(
            self.url(path),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-Ion-Token": self.token},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.read().decode()

    def rpc(self, service: str, op: str, content: str = "null") -> subprocess.CompletedProcess[str]:
        """Call C{service}'s C{op} with C{ion-rpc} from another OS process (traffic from outside)."""
        return subprocess.run(
            [
                str(ION_RPC),
                "--broker",
                URL,
                "-s",
                self.sysname,
                "--timeout",
                "5",
                service,
                op,
                content,
            ],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    def stop(self) -> None:
        """SIGINT the container and wait for it (SIGKILL after TIMEOUT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
