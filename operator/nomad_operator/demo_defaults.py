"""Every default of `nomad-operator demo`, as named constants in one place.

The demo stands in for a real cluster, so its timings are Nomad's shapes at demo speed: a pulled plug must show
within seconds rather than the 20-30 s a real cluster takes, and a first sync must not make a new user wait a
minute for consul's 30 s `min_healthy_time`. Each timing is an option of the demo; the tests shrink them further.
"""

from __future__ import annotations

from typing import Final

# Where things listen. 4646 is Nomad's own port: when it is free, `nomad-operator sim unplug pi2` works as printed.
LOCALHOST: Final = "127.0.0.1"
DEFAULT_SIM_PORT: Final = 4646
DEFAULT_OPERATOR_PORT: Final = 8080

# The simulated cluster: the reference setup's three arm64 Raspberry Pis.
DEFAULT_NODES: Final = 3
MAX_NODES: Final = 50
DEMO_ARCH: Final = "arm64"
DEFAULT_HEARTBEAT_TTL: Final = "2s"
DEFAULT_HEARTBEAT_GRACE: Final = "3s"
# Deployments wait min_healthy_time times this (consul's 30 s becomes 6 s, the others' 10 s become 2 s).
DEFAULT_DEPLOYMENT_TIME_SCALE: Final = 0.2

# The operator.
DEFAULT_REPLICAS: Final = 2
MAX_REPLICAS: Final = 5
SOURCE_NAME: Final = "demo"
SOURCE_REF: Final = "main"
JOB_GLOB: Final = "jobs/*.nomad"
DEFAULT_POLL_INTERVAL: Final = "60s"  # commits arrive by webhook; the poll only catches what a webhook missed

# The work directory: `.demo/` in the checkout (ignored by git).
DEFAULT_WORKDIR_NAME: Final = ".demo"
WORKDIR_MARKER: Final = ".nomad-operator-demo"  # only a directory carrying it is ever emptied or removed
REPO_DIR: Final = "repo"
SECRET_FILE: Final = "webhook-secret"
SIM_LOG: Final = "sim.log"
GIT_AUTHOR_NAME: Final = "nomad-operator demo"
GIT_AUTHOR_EMAIL: Final = "demo@localhost"
WEBHOOK_SECRET_BYTES: Final = 32

# The display and the supervision of children.
DEFAULT_REFRESH_SECONDS: Final = 1.0
MIN_REFRESH_SECONDS: Final = 0.05
MAX_REFRESH_SECONDS: Final = 60.0
HTTP_TIMEOUT_SECONDS: Final = 5.0
HTTP_READ_BUFSIZE: Final = 4 * 1024 * 1024  # Nomad lists grow; aiohttp's 64 KiB default splits long lines
STARTUP_TIMEOUT_SECONDS: Final = 60.0
STARTUP_POLL_SECONDS: Final = 0.1
STOP_TIMEOUT_SECONDS: Final = 10.0  # SIGTERM, then SIGKILL after this
LOG_TAIL_LINES: Final = 15
RECENT_EVENTS_SHOWN: Final = 10
WEBHOOK_TIMEOUT_SECONDS: Final = 10.0
NODE_STATUS_VARIABLE: Final = "nomad-operator/status/nodes"  # the node controller's report, when it runs
