"""The service scripts/soak_cluster.py runs in its twistd containers.

SoakCounted answers each call with the call's own token and, before answering,
appends the token to a file of its own (so a request run twice shows, however
the broker behaved); it also takes the soak's events from a named, shared
subscription (one quorum queue for all instances) and appends each event's
sequence number to another file. The files are the record: they need no
messaging, so a broker node's loss cannot take them away.

Spawn args: C{dir} (where the files go) and C{tag} (the container's name in
them); the event id and queue name are the module's constants.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ion.core.events import EventSubscriber
from ion.core.process.service import ServiceProcess

SERVICE = "soak_counted"
EVENT_ID = 9901  # not in ion's event table: an EventMessage without payload
EVENT_QUEUE = "soak_events"  # the named subscription, <sysname>.soak_events


class SoakCounted(ServiceProcess):
    declare = ServiceProcess.service_declare(name=SERVICE, version="0.1.0")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        where = Path(self.args["dir"])
        tag = self.args["tag"]
        # Line-buffered, so a line is in the file as soon as it is written.
        self._calls = open(where / f"{tag}.calls", "a", buffering=1)  # noqa: SIM115
        self._events = open(where / f"{tag}.events", "a", buffering=1)  # noqa: SIM115

    async def on_activate(self) -> None:
        sub = EventSubscriber(
            self, origin="#", event_id=EVENT_ID, queue_name=EVENT_QUEUE, handler=self._event
        )
        await sub.start()

    def _event(self, event: Any, msg: Any) -> None:
        self._events.write(f"{event.description} {time.time():.3f} {os.getpid()}\n")

    def op_call(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        self._calls.write(f"{content['token']} {time.time():.3f} {os.getpid()}\n")
        return {"token": content["token"], "by": str(self.id)}
