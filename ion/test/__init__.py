"""ion's test kit: what your own test suites import.

pytest (the plugin loads itself when ion is installed; see L{ion.test.plugin}):

    @pytest.mark.ion_container(rel="res/deploy/bank.rel")
    async def test_withdraw(ion_container):     # plain async def: pytest-twisted runs it
        client = TellerClient(container=ion_container)
        ...

Fixtures: C{ion_container}, C{ion_container_factory}, C{ion_kit}, C{ion_broker},
C{ion_sysname}, C{ion_offline}, C{ion_process_factory}. Markers:
C{ion_broker("amqp")}, C{ion_container(rel=, apps=, processes=, config=)}.
Options: C{--ion-broker=local|amqp|URL|local,amqp}, C{--ion-amqp-url},
C{--ion-no-leak-check}.

Processes are described as README.txt's "Process entries" says (name,
module, class, spawnargs). trial: L{ion.test.trial.IonTestCase} (C{_start_container}, C{_spawn_processes},
C{_stop_container}, C{_get_procid}, C{_get_procinstance}).

Without a broker (L{ion.test.fakes}): L{process_factory}, L{replace_clients},
L{call_op} / L{Reply}, L{next_op} (alias L{defer_next_op}), L{OfflineContainer};
L{remote_error} (the exception a remote error reply raises, for a faked client).
Stand-ins that record what they receive (L{ion.test.recording}): L{RecordingProcess},
L{RecordingService}.

Anywhere: L{IonKit} (containers of one test system, torn down and checked),
L{wait_for} and L{Collector} (wait on events with a deadline),
L{reactor_state} / L{wait_until_clean} / L{assert_clean} (reactor leftovers).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "IonKit": "ion.test.kit",
    "describe_process": "ion.test.kit",
    "BrokerSpec": "ion.test.brokers",
    "parse_broker": "ion.test.brokers",
    "unique_sysname": "ion.test.brokers",
    "OfflineContainer": "ion.test.fakes",
    "process_factory": "ion.test.fakes",
    "replace_clients": "ion.test.fakes",
    "call_op": "ion.test.fakes",
    "Reply": "ion.test.fakes",
    "next_op": "ion.test.fakes",
    "defer_next_op": "ion.test.fakes",
    "OpCall": "ion.test.fakes",
    "remote_error": "ion.test.remote",
    "RecordingProcess": "ion.test.recording",
    "RecordingService": "ion.test.recording",
    "wait_for": "ion.test.waiting",
    "Collector": "ion.test.waiting",
    "LeftoversError": "ion.test.leaks",
    "reactor_state": "ion.test.leaks",
    "wait_until_clean": "ion.test.leaks",
    "assert_clean": "ion.test.leaks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use, so loading the pytest plugin stays cheap."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ion.test' has no attribute {name!r}")
