"""The simulator's settings and every default, as named constants in one place.

Nomad's real timings (10 s heartbeat TTL plus 10 s grace, 10 s min_healthy_time, 30 s event heartbeats, 30 s
reschedule delay) make a test wait for minutes. Each is a setting here so tests can shrink them, while the defaults
stay Nomad's own, so the demo behaves like the cluster it stands in for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Nomad server defaults (nomad/config.go, nomad/heartbeat.go, nomad/stream).
DEFAULT_HEARTBEAT_TTL_S = 10.0  # min_heartbeat_ttl
DEFAULT_HEARTBEAT_GRACE_S = 10.0  # heartbeat_grace
DEFAULT_EVENT_HEARTBEAT_S = 30.0  # stream.NewJsonStream(ctx, 30*time.Second)
EVENT_BUFFER_SIZE = 100  # event_buffer_size
JOB_TRACKED_VERSIONS = 6  # JobDefaultTrackedVersions
NODE_EVENTS_KEPT = 10  # Node.Events keeps the last 10
MAX_BLOCKING_WAIT_S = 300.0  # MaxBlockingRPCQueryTime
DEFAULT_BLOCKING_WAIT_S = 300.0
BLOCKING_JITTER_FRACTION = 16  # JitterFraction: up to wait/16 is added
VARIABLE_LOCK_DEFAULT_TTL_S = 15.0
VARIABLE_LOCK_DEFAULT_DELAY_S = 15.0
VARIABLE_LOCK_MIN_TTL_S = 10.0
VARIABLE_LOCK_MAX_TTL_S = 24 * 3600.0
VARIABLE_ITEMS_MAX_BYTES = 64 * 1024

# Simulator choices (not Nomad's).
DEFAULT_NODE_COUNT = 3
DEFAULT_DATACENTER = "dc1"
DEFAULT_ARCH = "arm64"
DEFAULT_REGION = "global"
NODE_CPU_CORES = 4  # a Raspberry Pi 4
NODE_CORE_MHZ = 1500
NODE_MEMORY_MB = 8192
NODE_DISK_MB = 60_000
NODE_DRIVERS = ("docker", "exec", "raw_exec")
NODE_IP_BASE = "127.0.10."  # node i gets 127.0.10.<i>: loopback, so no packet ever leaves the machine
NOMAD_VERSION = "2.0.6"
MAX_BODY_BYTES = 16 * 1024 * 1024
SUBSCRIBER_QUEUE_BATCHES = 512  # a subscriber this far behind is dropped, as Nomad drops slow subscribers
CLIENT_UPDATE_BATCH_S = 0.02  # clients batch alloc updates (Nomad's client batches every 200 ms)
DEFAULT_TASK_START_S = 0.1  # simulated image pull and start
DEFAULT_TASK_STOP_S = 0.05  # simulated kill
DEFAULT_NODE_READY_S = 0.05  # initializing -> ready
DEFAULT_RESCHEDULE_DELAY_S = 0.5  # Nomad's is 30 s for service jobs; tests and the demo want it short
SHUTDOWN_TIMEOUT_S = 0.5  # aiohttp shutdown_timeout: an open event stream must not hold SIGTERM


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Everything that shapes a simulated cluster; every field has Nomad's default or a documented simulator one."""

    nodes: int = DEFAULT_NODE_COUNT
    node_names: tuple[str, ...] = ()  # default "pi1".."piN"
    datacenter: str = DEFAULT_DATACENTER
    arch: str = DEFAULT_ARCH
    region: str = DEFAULT_REGION
    acl: bool = False
    heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL_S
    heartbeat_grace: float = DEFAULT_HEARTBEAT_GRACE_S
    event_heartbeat: float = DEFAULT_EVENT_HEARTBEAT_S
    event_buffer_size: int = EVENT_BUFFER_SIZE
    task_start: float = DEFAULT_TASK_START_S
    task_stop: float = DEFAULT_TASK_STOP_S
    node_ready: float = DEFAULT_NODE_READY_S
    reschedule_delay: float = DEFAULT_RESCHEDULE_DELAY_S
    # Deployment timings are taken from the job's update block and multiplied by this factor (1.0 = Nomad's).
    deployment_time_scale: float = 1.0
    # Variable lock TTL and LockDelay timers run this much faster (validation still uses Nomad's 10 s..24 h).
    lock_time_scale: float = 1.0
    max_body_bytes: int = MAX_BODY_BYTES
    seed: int = 0
    extra_node_meta: dict[str, str] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        if self.node_names:
            return self.node_names
        return tuple(f"pi{number}" for number in range(1, self.nodes + 1))
