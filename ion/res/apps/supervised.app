# A supervision tree of three levels (README, "Supervision"): the app's top
# supervisor restarts the branch supervisor "pipeline" when it gives up;
# pipeline restarts its two workers together (one_for_all); "audit" stands alone.
type: application
name: supervised
version: "0.1"
description: a three-level supervision tree of tiny workers
applications: [ioncore]
supervisor:
  strategy: one_for_one
  intensity: 3
  period: 60
  children:
    - id: pipeline
      type: supervisor
      strategy: one_for_all
      intensity: 2
      period: 10
      children:
        - {id: reader, start: "ion.services.worker:Worker"}
        - {id: writer, start: "ion.services.worker:Worker", restart: transient}
    - id: audit
      start: "ion.services.worker:Worker"
      shutdown: 2
