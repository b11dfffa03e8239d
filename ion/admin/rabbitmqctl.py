"""Running C{rabbitmqctl} for ion-admin: a node name, a path, and errors that say which command failed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from typing import Any

from ion.core.exception import IonError

TIMEOUT = 60.0


class AdminError(IonError):
    """A broker administration step failed; the message names the step and what the broker said."""


def _named(args: tuple[str, ...]) -> list[str]:
    """The command and the names it acts on (a vhost, a user), for an error message:
    not the options nor the permission regexes after them."""
    words = [
        a for n, a in enumerate(args) if not a.startswith("-") and args[n - 1] != "--formatter"
    ]
    return words[:3]


class Rabbitmqctl:
    """C{rabbitmqctl [-n node] ...} with C{env} (None: this process's environment;
    rabbitmqctl finds the node's Erlang cookie in C{$HOME})."""

    def __init__(
        self,
        path: str = "rabbitmqctl",
        node: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.node = node
        self.env = None if env is None else dict(env)

    def run(self, *args: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
        """Run a command; its output. Secrets go in C{stdin}, never in C{args}
        (which any user of the machine can read in the process list).

        @raise AdminError: it could not run, or exited with a status not in C{ok}.
        """
        command = [self.path, *(["-n", self.node] if self.node else []), *args]
        try:
            done = subprocess.run(
                command,
                input=(stdin or "").encode(),
                capture_output=True,
                env=self.env,
                timeout=TIMEOUT,
            )
        except FileNotFoundError:
            raise AdminError(
                f"rabbitmqctl not found at {self.path!r} (give --rabbitmqctl)"
            ) from None
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AdminError(f"rabbitmqctl {args[0]}: {e}") from None
        if done.returncode not in ok:
            said = (done.stderr or done.stdout).decode(errors="replace").strip()
            said = said.removeprefix("Error:").strip()
            raise AdminError(f"rabbitmqctl {' '.join(_named(args))}: {said}")
        return done.stdout.decode(errors="replace")

    def users(self) -> list[dict[str, Any]]:
        """The broker's users: C{{"user": name, "tags": [...]}} each."""
        return self._listed("list_users")

    def vhosts(self) -> list[str]:
        """The names of the broker's vhosts."""
        return [str(v.get("name")) for v in self._listed("list_vhosts", "name")]

    def _listed(self, *command: str) -> list[dict[str, Any]]:
        out = self.run(*command, "--formatter", "json", "--silent")
        try:
            rows = json.loads(out)
        except ValueError:
            raise AdminError(f"rabbitmqctl {command[0]}: not JSON: {out[:200]!r}") from None
        return [row for row in rows if isinstance(row, dict)]
