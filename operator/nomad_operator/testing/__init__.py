"""Testing toolkit: test your controllers the way nomad-operator tests its own.

- `nomad_operator.testing.fixtures` is a pytest plugin (`pytest_plugins = ["nomad_operator.testing.fixtures"]`) with
  `nomad_sim`, `nomad_client` and `operator_factory`: a simulated cluster and operators, in-process, per test;
- `eventually`, `wait_for_job_status`, `wait_for_job_gone`, `wait_for_allocs`: waits with deadlines whose failures
  say what was awaited and what was last seen (`WaitTimeout`).

The fixtures module imports pytest, so it is not imported here: `import nomad_operator.testing` stays cheap.
"""

from nomad_operator.testing.waiting import (
    WaitTimeout,
    eventually,
    wait_for_allocs,
    wait_for_job_gone,
    wait_for_job_status,
)

__all__ = ["WaitTimeout", "eventually", "wait_for_allocs", "wait_for_job_gone", "wait_for_job_status"]
