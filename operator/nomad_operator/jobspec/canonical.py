"""Fill a job's unset fields with the defaults of Nomad's api `Canonicalize`, as `/v1/jobs/parse` does on request.

Two jobs that differ only in whether a default was written out ("count = 1" or no count) are the same job to
Nomad. The spec hash must not tell them apart, or every spelling change would look like a change to deploy; and the
simulator's `/v1/jobs/parse` with `Canonicalize: true` must answer what Nomad answers. So this is a transcription of
api/jobs.go, api/tasks.go, api/resources.go, api/services.go and api/consul.go Canonicalize methods: the same
defaults, the same inheritance from job to group to task (update, reschedule, migrate, restart), the same order.
It never mutates its argument.
"""

from __future__ import annotations

import copy
import posixpath
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


def canonicalize(job: Obj) -> Obj:
    """A copy of `job` with every default filled in, as api.Job.Canonicalize leaves it."""
    job = copy.deepcopy(job)
    if job.get("ID") is None:
        job["ID"] = ""
    if job.get("Name") is None:
        job["Name"] = job["ID"]
    _fill(job, JOB_DEFAULTS)
    periodic = _obj(job.get("Periodic"))
    if periodic is not None:
        _fill(periodic, {"Enabled": True, "SpecType": "cron", "ProhibitOverlap": False})
        if periodic.get("Spec") is None and not periodic.get("Specs"):
            periodic["Spec"] = ""
        if not periodic.get("TimeZone"):
            periodic["TimeZone"] = "UTC"
    update = _obj(job.get("Update"))
    if update is not None:
        _fill(update, UPDATE_DEFAULTS)
    elif job["Type"] == "service":
        job["Update"] = _new("UpdateStrategy", UPDATE_DEFAULTS)
    multiregion = _obj(job.get("Multiregion"))
    if multiregion is not None:
        _multiregion(multiregion)
    for group in _objs(job.get("TaskGroups")):
        _group(group, job)
    _weights(job)
    return job


def _group(group: Obj, job: Obj) -> None:
    job_type = str(job["Type"])
    if group.get("Name") is None:
        group["Name"] = ""
    scaling = _obj(group.get("Scaling"))
    if group.get("Count") is None:
        group["Count"] = scaling["Min"] if scaling is not None and scaling.get("Min") is not None else 1
    if scaling is not None:
        _fill(scaling, {"Enabled": True, "Min": group["Count"]})
        if not scaling.get("Type"):
            scaling["Type"] = "horizontal"
    group["EphemeralDisk"] = _filled(group.get("EphemeralDisk"), "EphemeralDisk", EPHEMERAL_DISK_DEFAULTS)
    consul = _obj(group.get("Consul")) or _new("Consul", {})
    if not consul.get("Namespace") and job.get("ConsulNamespace") is not None:
        consul["Namespace"] = job["ConsulNamespace"]
    _consul(consul)
    group["Consul"] = consul
    group["Update"] = _inherit(job.get("Update"), group.get("Update"), skip_empty_job=True)
    if group["Update"] is not None:
        _fill(_obj(group["Update"]) or {}, UPDATE_DEFAULTS)
    reschedule = _inherit(job.get("Reschedule"), group.get("ReschedulePolicy"))
    if reschedule is None and job_type != "system":
        reschedule = _new("ReschedulePolicy", RESCHEDULE_DEFAULTS.get(job_type, RESCHEDULE_DEFAULTS["other"]))
    if reschedule is not None:
        _fill(reschedule, RESCHEDULE_DEFAULTS.get(job_type, RESCHEDULE_DEFAULTS["other"]))
    group["ReschedulePolicy"] = reschedule
    migrate = _inherit(job.get("Migrate"), group.get("Migrate"))
    if migrate is None and job_type == "service":
        migrate = _new("MigrateStrategy", {})
    if migrate is not None:
        _fill(migrate, MIGRATE_DEFAULTS)
    group["Migrate"] = migrate
    restart = _new("RestartPolicy", RESTART_DEFAULTS["service" if job_type in ("service", "system") else "batch"])
    _merge(restart, _obj(group.get("RestartPolicy")))
    group["RestartPolicy"] = restart
    for task in _objs(group.get("Tasks")):
        _task(task, group, job)
    _weights(group)
    for network in _objs(group.get("Networks")):
        _network(network)
    for service in _objs(group.get("Services")):
        _service(service, None, group, job)
    _fill(group, {"PreventRescheduleOnLost": False})
    disconnect = _obj(group.get("Disconnect"))
    if disconnect is not None:
        _fill(disconnect, {"Replace": True, "Reconcile": "best_score"})


def _task(task: Obj, group: Obj, job: Obj) -> None:
    task["Resources"] = _resources(_obj(task.get("Resources")) or _new("Resources", {}))
    _fill(task, {"KillTimeout": KILL_TIMEOUT})
    task["LogConfig"] = _filled(task.get("LogConfig"), "LogConfig", LOG_DEFAULTS)
    for artifact in _objs(task.get("Artifacts")):
        _artifact(artifact)
    vault = _obj(task.get("Vault"))
    if vault is not None:
        _fill(vault, VAULT_DEFAULTS)
        if not vault.get("Cluster"):
            vault["Cluster"] = DEFAULT_CLUSTER
    consul = _obj(task.get("Consul"))
    if consul is not None:
        _consul(consul)
    for template in _objs(task.get("Templates")):
        _template(template)
    for service in _objs(task.get("Services")):
        _service(service, task, group, job)
    _weights(task)
    for mount in _objs(task.get("VolumeMounts")):
        _fill(mount, VOLUME_MOUNT_DEFAULTS)
    lifecycle = _obj(task.get("Lifecycle"))
    if lifecycle is not None and not lifecycle.get("Hook"):
        task["Lifecycle"] = None
    plugin = _obj(task.get("CSIPluginConfig"))
    if plugin is not None:
        for key, default in CSI_PLUGIN_DEFAULTS.items():
            if not plugin.get(key):
                plugin[key] = default
    restart = dict(_obj(group["RestartPolicy"]) or {})
    _merge(restart, _obj(task.get("RestartPolicy")))
    task["RestartPolicy"] = restart


def _resources(resources: Obj) -> Obj:
    if resources.get("Cores") is None:
        resources["Cores"] = RESOURCES_DEFAULTS["Cores"]
        if resources.get("CPU") is None:
            resources["CPU"] = RESOURCES_DEFAULTS["CPU"]
    if resources.get("CPU") is None:
        resources["CPU"] = 0  # cores were given: no CPU shares on top
    _fill(resources, {"MemoryMB": RESOURCES_DEFAULTS["MemoryMB"]})
    for device in _objs(resources.get("Devices")):
        _fill(device, {"Count": 1})
        _weights(device)
    numa = _obj(resources.get("NUMA"))
    if numa is not None and not numa.get("Affinity"):
        numa["Affinity"] = "none"
    return resources


def _artifact(artifact: Obj) -> None:
    _fill(artifact, ARTIFACT_DEFAULTS)
    for key in ("GetterOptions", "GetterHeaders"):
        if not artifact.get(key):
            artifact[key] = None
    if artifact.get("RelativeDest") is None:
        if artifact["GetterMode"] == "file":
            artifact["RelativeDest"] = posixpath.join("local", posixpath.basename(str(artifact["GetterSource"])))
        else:
            artifact["RelativeDest"] = "local/"


def _template(template: Obj) -> None:
    _fill(template, TEMPLATE_DEFAULTS)
    signal = template.get("ChangeSignal")
    if signal is None:
        template["ChangeSignal"] = "SIGHUP" if template["ChangeMode"] == "signal" else ""
    else:
        template["ChangeSignal"] = str(signal).upper()
    script = _obj(template.get("ChangeScript"))
    if script is not None:
        _fill(script, CHANGE_SCRIPT_DEFAULTS)
        if script.get("Args") is None:
            script["Args"] = []


def _service(service: Obj, task: Obj | None, group: Obj, job: Obj) -> None:
    if not service.get("Name"):
        parts = [job["Name"], group["Name"]] + ([task["Name"]] if task is not None else [])
        service["Name"] = "-".join(str(part) for part in parts)
    for key, default in SERVICE_DEFAULTS.items():
        if not service.get(key):
            service[key] = default
    for key in ("Meta", "CanaryMeta", "TaggedAddresses"):
        if not service.get(key):
            service[key] = None
    connect = _obj(service.get("Connect"))
    if connect is not None:
        _connect(connect)
    weights = _obj(service.get("Weights"))
    if weights is not None:
        for key in ("Passing", "Warning"):
            if _number(weights.get(key)) <= 0:
                weights[key] = 1
    service_restart = _obj(service.get("CheckRestart"))
    for check in _objs(service.get("Checks")):
        check["CheckRestart"] = _merged_check_restart(service_restart, _obj(check.get("CheckRestart")))
        for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
            if _number(check.get(key)) < 0:
                check[key] = 0
        if not check.get("OnUpdate"):
            check["OnUpdate"] = service["OnUpdate"]


def _merged_check_restart(service: Obj | None, check: Obj | None) -> Value:
    if service is None:
        merged = copy.deepcopy(check)
    else:
        merged = copy.deepcopy(service)
        if check is not None:
            if _number(check.get("Limit")) > 0:
                merged["Limit"] = check["Limit"]
            if check.get("Grace") is not None:
                merged["Grace"] = check["Grace"]
            if check.get("IgnoreWarnings"):
                merged["IgnoreWarnings"] = True
    if merged is not None:
        _fill(merged, {"Grace": CHECK_RESTART_GRACE})
    return merged


def _connect(connect: Obj) -> None:
    sidecar = _obj(connect.get("SidecarService"))
    if sidecar is not None:
        _empty_to_null(sidecar, "Tags", "Meta")
        proxy = _obj(sidecar.get("Proxy"))
        if proxy is not None:
            _empty_to_null(proxy, "Upstreams", "Config")
            expose = _obj(proxy.get("Expose"))
            if expose is not None:
                _empty_to_null(expose, "Paths", "Path")
            tproxy = _obj(proxy.get("TransparentProxy"))
            if tproxy is not None:
                _empty_to_null(tproxy, "ExcludeInboundPorts", "ExcludeOutboundCIDRs", "ExcludeOutboundPorts",
                               "ExcludeUIDs")  # fmt: skip
            for upstream in _objs(proxy.get("Upstreams")):
                _empty_to_null(upstream, "Config")
    sidecar_task = _obj(connect.get("SidecarTask"))
    if sidecar_task is not None:
        _empty_to_null(sidecar_task, "Config", "Env", "Meta")
        resources = _obj(sidecar_task.get("Resources"))
        default_resources = _new("Resources", RESOURCES_DEFAULTS)
        sidecar_task["Resources"] = _resources(resources) if resources is not None else default_resources
        sidecar_task["LogConfig"] = _filled(sidecar_task.get("LogConfig"), "LogConfig", LOG_DEFAULTS)
        _fill(sidecar_task, {"KillTimeout": KILL_TIMEOUT, "ShutdownDelay": 0})
        for mount in _objs(sidecar_task.get("VolumeMounts")):
            _fill(mount, VOLUME_MOUNT_DEFAULTS)
    gateway = _obj(connect.get("Gateway"))
    if gateway is not None:
        proxy = _obj(gateway.get("Proxy"))
        if proxy is not None:
            _fill(proxy, {"ConnectTimeout": GATEWAY_CONNECT_TIMEOUT})
            _empty_to_null(proxy, "EnvoyGatewayBindAddresses", "Config")
        ingress = _obj(gateway.get("Ingress"))
        if ingress is not None:
            _empty_to_null(ingress, "Listeners")
            for listener in _objs(ingress.get("Listeners")):
                if not listener.get("Protocol"):
                    listener["Protocol"] = "tcp"
                _empty_to_null(listener, "Services")
                for ingress_service in _objs(listener.get("Services")):
                    _empty_to_null(ingress_service, "Hosts")
        terminating = _obj(gateway.get("Terminating"))
        if terminating is not None:
            _empty_to_null(terminating, "Services")


def _consul(consul: Obj) -> None:
    if not consul.get("Cluster"):
        consul["Cluster"] = DEFAULT_CLUSTER


def _network(network: Obj) -> None:
    _fill(network, {"MBits": NETWORK_DEFAULT_MBITS})


def _multiregion(multiregion: Obj) -> None:
    strategy = _obj(multiregion.get("Strategy"))
    if strategy is None:
        multiregion["Strategy"] = _new("MultiregionStrategy", {"MaxParallel": 0, "OnFailure": ""})
    else:
        _fill(strategy, {"MaxParallel": 0, "OnFailure": ""})
    if multiregion.get("Regions") is None:
        multiregion["Regions"] = []
    for region in _objs(multiregion.get("Regions")):
        _fill(region, {"Count": 1})
        if region.get("Datacenters") is None:
            region["Datacenters"] = []
        if region.get("Meta") is None:
            region["Meta"] = {}


def _weights(owner: Obj) -> None:
    """Affinities and spreads without a weight get the default weight 50."""
    for key in ("Affinities", "Spreads"):
        for item in _objs(owner.get(key)):
            _fill(item, {"Weight": DEFAULT_WEIGHT})


def _inherit(job_value: Value, group_value: Value, *, skip_empty_job: bool = False) -> Obj | None:
    """A group's policy: the job's, overridden field by field by the group's own."""
    job_policy = _obj(job_value)
    group_policy = _obj(group_value)
    if job_policy is not None and group_policy is not None:
        merged = copy.deepcopy(job_policy)
        _merge(merged, group_policy)
        return merged
    if job_policy is not None:
        if skip_empty_job and all(not value for value in job_policy.values()):
            return group_policy
        return copy.deepcopy(job_policy)
    return group_policy


def _merge(target: Obj, override: Obj | None) -> None:
    for key, value in (override or {}).items():
        if value is not None:
            target[key] = value


def _fill(target: Obj, defaults: Obj) -> None:
    for key, default in defaults.items():
        if target.get(key) is None:
            target[key] = copy.deepcopy(default)


def _filled(value: Value, struct_name: str, defaults: Obj) -> Obj:
    obj = _obj(value)
    if obj is None:
        return _new(struct_name, defaults)
    _fill(obj, defaults)
    return obj


def _new(struct_name: str, values: Obj) -> Obj:
    """A struct Nomad creates while canonicalizing: every field present, in Go order, as Go prints it."""
    obj = STRUCTS[struct_name].empty()
    obj.update(copy.deepcopy(values))
    return obj


def _empty_to_null(target: Obj, *keys: str) -> None:
    for key in keys:
        if not target.get(key):
            target[key] = None


def _number(value: Value) -> float:
    return value if isinstance(value, int | float) else 0


def _obj(value: Value) -> Obj | None:
    return value if isinstance(value, dict) else None


def _objs(value: Value) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
