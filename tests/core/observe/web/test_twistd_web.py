"""C{twistd -n cc --web}: a real container serving the view, and a bad value
refused as a usage error."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

from tests.helpers import closed_port
from tests.launch import interrupt, launch, wait_for_file


def test_twistd_serves_the_web_view_and_logs_where(tmp_path: Path) -> None:
    """--web PORT: 127.0.0.1; the log names the address, never the token,
    which is in web.token_file (0600) while the container runs."""
    ready, token_file, port = tmp_path / "ready", tmp_path / "token", closed_port()
    proc = launch("web", "--ready-file", str(ready), "--web", str(port),
                  "-a", f"web.token_file={token_file}")  # fmt: skip
    try:
        wait_for_file(ready, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/system", timeout=5) as r:
            data = json.loads(r.read())
            assert r.headers["Content-Security-Policy"] == "default-src 'self'"
        assert [c["state"] for c in data["containers"]] == ["UP"]
        token = token_file.read_text().strip()
        assert token_file.stat().st_mode & 0o777 == 0o600 and len(token) >= 32
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output
    assert re.search(rf"observer web view at http://127\.0\.0\.1:{port}/", output), output
    assert token not in output
    assert not token_file.exists()


def test_a_bad_web_value_is_one_line_naming_the_option(tmp_path: Path) -> None:
    proc = launch("badweb", "--web", "example.org:80")
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1, output
    assert "twistd cc: web.listen (--web): expected PORT or HOST:PORT" in output
    assert "Traceback" not in output
