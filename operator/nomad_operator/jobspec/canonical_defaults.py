"""The defaults of Nomad's api `Canonicalize` methods, and the three ways those methods apply them.

Why one module: `canonicalize` and the struct canonicalizers of `canonical_blocks` share every default, and a
default typed twice drifts. The values are transcribed from api/jobs.go, api/tasks.go, api/resources.go,
api/services.go and api/consul.go. The hazard in applying them is Go's pointer semantics in JSON clothing: a field
is unset only when it is null or absent (`fill`), some fields count as unset when merely empty (`empty_to_null`,
Nomad's "nil if empty" normalisation), a job-level policy is overridden field by field by the group's own
(`inherit`, `merge_set`), and a default must never be shared between two jobs: every value is deep-copied in.
"""

from __future__ import annotations

import copy
from typing import Final

from nomad_operator.durations import HOUR, MINUTE, SECOND
from nomad_operator.jobspec.body import Value
from nomad_operator.jobspec.schema import STRUCTS

Obj = dict[str, Value]

JOB_DEFAULTS: Final[Obj] = {
    "ParentID": "",
    "Namespace": "default",
    "Priority": 50,
    "Stop": False,
    "Region": "global",
    "NodePool": "",
    "Type": "service",
    "AllAtOnce": False,
    "ConsulNamespace": "",
    "VaultNamespace": "",
    "NomadTokenID": "",
    "Status": "",
    "StatusDescription": "",
    "Stable": False,
    "Version": 0,
    "CreateIndex": 0,
    "ModifyIndex": 0,
    "JobModifyIndex": 0,
}
UPDATE_DEFAULTS: Final[Obj] = {
    "Stagger": 30 * SECOND,
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * SECOND,
    "HealthyDeadline": 5 * MINUTE,
    "ProgressDeadline": 10 * MINUTE,
    "Canary": 0,
    "AutoRevert": False,
    "AutoPromote": False,
}
MIGRATE_DEFAULTS: Final[Obj] = {
    "MaxParallel": 1,
    "HealthCheck": "checks",
    "MinHealthyTime": 10 * SECOND,
    "HealthyDeadline": 5 * MINUTE,
}
RESCHEDULE_DEFAULTS: Final[dict[str, Obj]] = {
    "service": {"Attempts": 0, "Interval": 0, "Delay": 30 * SECOND, "DelayFunction": "exponential",
                "MaxDelay": HOUR, "Unlimited": True},
    "batch": {"Attempts": 1, "Interval": 24 * HOUR, "Delay": 5 * SECOND, "DelayFunction": "constant",
              "MaxDelay": 0, "Unlimited": False},
    "other": {"Attempts": 0, "Interval": 0, "Delay": 0, "DelayFunction": "", "MaxDelay": 0, "Unlimited": False},
}  # fmt: skip
RESTART_DEFAULTS: Final[dict[str, Obj]] = {
    "service": {"Interval": 30 * MINUTE, "Attempts": 2, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
    "batch": {"Interval": 24 * HOUR, "Attempts": 3, "Delay": 15 * SECOND, "Mode": "fail", "RenderTemplates": False},
}
EPHEMERAL_DISK_DEFAULTS: Final[Obj] = {"Sticky": False, "Migrate": False, "SizeMB": 300}
RESOURCES_DEFAULTS: Final[Obj] = {"CPU": 100, "Cores": 0, "MemoryMB": 300}
LOG_DEFAULTS: Final[Obj] = {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False}
KILL_TIMEOUT: Final = 5 * SECOND
ARTIFACT_DEFAULTS: Final[Obj] = {"GetterMode": "any", "GetterInsecure": False, "GetterSource": ""}
VAULT_DEFAULTS: Final[Obj] = {"Env": True, "DisableFile": False, "Namespace": "", "ChangeMode": "restart",
                              "ChangeSignal": "SIGHUP", "AllowTokenExpiration": False}  # fmt: skip
TEMPLATE_DEFAULTS: Final[Obj] = {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "", "ChangeMode": "restart",
                                 "Splay": 5 * SECOND, "Perms": "0644", "LeftDelim": "{{", "RightDelim": "}}",
                                 "Envvars": False, "ErrMissingKey": False, "VaultGrace": 0}  # fmt: skip
CHANGE_SCRIPT_DEFAULTS: Final[Obj] = {"Command": "", "Timeout": 5 * SECOND, "FailOnError": False}
VOLUME_MOUNT_DEFAULTS: Final[Obj] = {"PropagationMode": "private", "ReadOnly": False, "SELinuxLabel": ""}
CSI_PLUGIN_DEFAULTS: Final[Obj] = {
    "MountDir": "/csi",
    "StagePublishBaseDir": "/local/csi",
    "HealthTimeout": 30 * SECOND,
}
SERVICE_DEFAULTS: Final[Obj] = {"AddressMode": "auto", "OnUpdate": "require_healthy", "Provider": "consul",
                                "Cluster": "default"}  # fmt: skip
DEFAULT_WEIGHT: Final = 50
DEFAULT_CLUSTER: Final = "default"
CHECK_RESTART_GRACE: Final = SECOND
GATEWAY_CONNECT_TIMEOUT: Final = 5 * SECOND
NETWORK_DEFAULT_MBITS: Final = 10


def inherit(job_value: Value, group_value: Value, *, skip_empty_job: bool = False) -> Obj | None:
    """A group's policy: the job's, overridden field by field by the group's own."""
    job_policy = as_object(job_value)
    group_policy = as_object(group_value)
    if job_policy is not None and group_policy is not None:
        merged = copy.deepcopy(job_policy)
        merge_set(merged, group_policy)
        return merged
    if job_policy is not None:
        if skip_empty_job and all(not value for value in job_policy.values()):
            return group_policy
        return copy.deepcopy(job_policy)
    return group_policy


def merge_set(target: Obj, override: Obj | None) -> None:
    """Copy the fields `override` sets (not null) over `target`, as Go's Merge methods copy non-nil pointers."""
    for key, value in (override or {}).items():
        if value is not None:
            target[key] = value


def fill(target: Obj, defaults: Obj) -> None:
    """Set each default where `target` has the field null or absent (a nil pointer in Go)."""
    for key, default in defaults.items():
        if target.get(key) is None:
            target[key] = copy.deepcopy(default)


def filled(value: Value, struct_name: str, defaults: Obj) -> Obj:
    """`value` with its defaults filled, or a new `struct_name` holding only the defaults when it is unset."""
    obj = as_object(value)
    if obj is None:
        return new_struct(struct_name, defaults)
    fill(obj, defaults)
    return obj


def new_struct(struct_name: str, values: Obj) -> Obj:
    """A struct Nomad creates while canonicalizing: every field present, in Go order, as Go prints it."""
    obj = STRUCTS[struct_name].empty()
    obj.update(copy.deepcopy(values))
    return obj


def empty_to_null(target: Obj, *keys: str) -> None:
    """Nomad's "nil if empty": an empty list, map or string at these keys becomes null."""
    for key in keys:
        if not target.get(key):
            target[key] = None


def number_or_zero(value: Value) -> float:
    return value if isinstance(value, int | float) else 0


def as_object(value: Value) -> Obj | None:
    return value if isinstance(value, dict) else None


def objects_in(value: Value) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
