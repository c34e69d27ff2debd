"""The api `Canonicalize` of the structs inside a group or task: resources, artifacts, templates, services, checks,
Consul Connect, networks, multiregion, affinity and spread weights.

Why apart from `canonical`: these structs are canonicalized from their own fields alone (a service also needs the
job, group and task names for its default name), while `canonical` carries what flows down from job to group to
task. The hazard is the same as there: a default filled differently from Nomad makes the spec hash and
`/v1/jobs/parse` disagree with a real cluster, so each function follows one Go method, quirks included (a service's
empty Meta becomes null, a check inherits the service's CheckRestart field by field, Connect's empty lists become
null). Every function fills its argument in place; `canonicalize` works on its own deep copy.
"""

from __future__ import annotations

import copy
import posixpath

from nomad_operator.jobspec.body import Value
from nomad_operator.jobspec.canonical_defaults import (
    ARTIFACT_DEFAULTS,
    CHANGE_SCRIPT_DEFAULTS,
    CHECK_RESTART_GRACE,
    DEFAULT_CLUSTER,
    DEFAULT_WEIGHT,
    GATEWAY_CONNECT_TIMEOUT,
    KILL_TIMEOUT,
    LOG_DEFAULTS,
    NETWORK_DEFAULT_MBITS,
    RESOURCES_DEFAULTS,
    SERVICE_DEFAULTS,
    TEMPLATE_DEFAULTS,
    VOLUME_MOUNT_DEFAULTS,
    Obj,
    as_object,
    empty_to_null,
    fill,
    filled,
    new_struct,
    number_or_zero,
    objects_in,
)


def canonicalize_resources(resources: Obj) -> Obj:
    if resources.get("Cores") is None:
        resources["Cores"] = RESOURCES_DEFAULTS["Cores"]
        if resources.get("CPU") is None:
            resources["CPU"] = RESOURCES_DEFAULTS["CPU"]
    if resources.get("CPU") is None:
        resources["CPU"] = 0  # cores were given: no CPU shares on top
    fill(resources, {"MemoryMB": RESOURCES_DEFAULTS["MemoryMB"]})
    for device in objects_in(resources.get("Devices")):
        fill(device, {"Count": 1})
        default_weights(device)
    numa = as_object(resources.get("NUMA"))
    if numa is not None and not numa.get("Affinity"):
        numa["Affinity"] = "none"
    return resources


def canonicalize_artifact(artifact: Obj) -> None:
    fill(artifact, ARTIFACT_DEFAULTS)
    for key in ("GetterOptions", "GetterHeaders"):
        if not artifact.get(key):
            artifact[key] = None
    if artifact.get("RelativeDest") is None:
        if artifact["GetterMode"] == "file":
            artifact["RelativeDest"] = posixpath.join("local", posixpath.basename(str(artifact["GetterSource"])))
        else:
            artifact["RelativeDest"] = "local/"


def canonicalize_template(template: Obj) -> None:
    fill(template, TEMPLATE_DEFAULTS)
    signal = template.get("ChangeSignal")
    if signal is None:
        template["ChangeSignal"] = "SIGHUP" if template["ChangeMode"] == "signal" else ""
    else:
        template["ChangeSignal"] = str(signal).upper()
    script = as_object(template.get("ChangeScript"))
    if script is not None:
        fill(script, CHANGE_SCRIPT_DEFAULTS)
        if script.get("Args") is None:
            script["Args"] = []


def canonicalize_service(service: Obj, *, task: Obj | None, group: Obj, job: Obj) -> None:
    if not service.get("Name"):
        parts = [job["Name"], group["Name"]] + ([task["Name"]] if task is not None else [])
        service["Name"] = "-".join(str(part) for part in parts)
    for key, default in SERVICE_DEFAULTS.items():
        if not service.get(key):
            service[key] = default
    for key in ("Meta", "CanaryMeta", "TaggedAddresses"):
        if not service.get(key):
            service[key] = None
    connect = as_object(service.get("Connect"))
    if connect is not None:
        _connect(connect)
    weights = as_object(service.get("Weights"))
    if weights is not None:
        for key in ("Passing", "Warning"):
            if number_or_zero(weights.get(key)) <= 0:
                weights[key] = 1
    service_restart = as_object(service.get("CheckRestart"))
    for check in objects_in(service.get("Checks")):
        check["CheckRestart"] = _merged_check_restart(service_restart, as_object(check.get("CheckRestart")))
        for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
            if number_or_zero(check.get(key)) < 0:
                check[key] = 0
        if not check.get("OnUpdate"):
            check["OnUpdate"] = service["OnUpdate"]


def _merged_check_restart(service: Obj | None, check: Obj | None) -> Value:
    if service is None:
        merged = copy.deepcopy(check)
    else:
        merged = copy.deepcopy(service)
        if check is not None:
            if number_or_zero(check.get("Limit")) > 0:
                merged["Limit"] = check["Limit"]
            if check.get("Grace") is not None:
                merged["Grace"] = check["Grace"]
            if check.get("IgnoreWarnings"):
                merged["IgnoreWarnings"] = True
    if merged is not None:
        fill(merged, {"Grace": CHECK_RESTART_GRACE})
    return merged


def _connect(connect: Obj) -> None:
    sidecar = as_object(connect.get("SidecarService"))
    if sidecar is not None:
        empty_to_null(sidecar, "Tags", "Meta")
        proxy = as_object(sidecar.get("Proxy"))
        if proxy is not None:
            empty_to_null(proxy, "Upstreams", "Config")
            expose = as_object(proxy.get("Expose"))
            if expose is not None:
                empty_to_null(expose, "Paths", "Path")
            tproxy = as_object(proxy.get("TransparentProxy"))
            if tproxy is not None:
                empty_to_null(tproxy, "ExcludeInboundPorts", "ExcludeOutboundCIDRs", "ExcludeOutboundPorts",
                               "ExcludeUIDs")  # fmt: skip
            for upstream in objects_in(proxy.get("Upstreams")):
                empty_to_null(upstream, "Config")
    sidecar_task = as_object(connect.get("SidecarTask"))
    if sidecar_task is not None:
        empty_to_null(sidecar_task, "Config", "Env", "Meta")
        resources = as_object(sidecar_task.get("Resources"))
        default_resources = new_struct("Resources", RESOURCES_DEFAULTS)
        sidecar_task["Resources"] = canonicalize_resources(resources) if resources is not None else default_resources
        sidecar_task["LogConfig"] = filled(sidecar_task.get("LogConfig"), "LogConfig", LOG_DEFAULTS)
        fill(sidecar_task, {"KillTimeout": KILL_TIMEOUT, "ShutdownDelay": 0})
        for mount in objects_in(sidecar_task.get("VolumeMounts")):
            fill(mount, VOLUME_MOUNT_DEFAULTS)
    gateway = as_object(connect.get("Gateway"))
    if gateway is not None:
        proxy = as_object(gateway.get("Proxy"))
        if proxy is not None:
            fill(proxy, {"ConnectTimeout": GATEWAY_CONNECT_TIMEOUT})
            empty_to_null(proxy, "EnvoyGatewayBindAddresses", "Config")
        ingress = as_object(gateway.get("Ingress"))
        if ingress is not None:
            empty_to_null(ingress, "Listeners")
            for listener in objects_in(ingress.get("Listeners")):
                if not listener.get("Protocol"):
                    listener["Protocol"] = "tcp"
                empty_to_null(listener, "Services")
                for ingress_service in objects_in(listener.get("Services")):
                    empty_to_null(ingress_service, "Hosts")
        terminating = as_object(gateway.get("Terminating"))
        if terminating is not None:
            empty_to_null(terminating, "Services")


def canonicalize_consul(consul: Obj) -> None:
    if not consul.get("Cluster"):
        consul["Cluster"] = DEFAULT_CLUSTER


def canonicalize_network(network: Obj) -> None:
    fill(network, {"MBits": NETWORK_DEFAULT_MBITS})


def canonicalize_multiregion(multiregion: Obj) -> None:
    strategy = as_object(multiregion.get("Strategy"))
    if strategy is None:
        multiregion["Strategy"] = new_struct("MultiregionStrategy", {"MaxParallel": 0, "OnFailure": ""})
    else:
        fill(strategy, {"MaxParallel": 0, "OnFailure": ""})
    if multiregion.get("Regions") is None:
        multiregion["Regions"] = []
    for region in objects_in(multiregion.get("Regions")):
        fill(region, {"Count": 1})
        if region.get("Datacenters") is None:
            region["Datacenters"] = []
        if region.get("Meta") is None:
            region["Meta"] = {}


def default_weights(owner: Obj) -> None:
    """Affinities and spreads without a weight get the default weight 50."""
    for key in ("Affinities", "Spreads"):
        for item in objects_in(owner.get(key)):
            fill(item, {"Weight": DEFAULT_WEIGHT})
