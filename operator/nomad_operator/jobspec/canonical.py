"""Fill a job's unset fields with the defaults of Nomad's api `Canonicalize`, as `/v1/jobs/parse` does on request.

Two jobs that differ only in whether a default was written out ("count = 1" or no count) are the same job to
Nomad. The spec hash must not tell them apart, or every spelling change would look like a change to deploy; and the
simulator's `/v1/jobs/parse` with `Canonicalize: true` must answer what Nomad answers. So this is a transcription of
api/jobs.go, api/tasks.go, api/resources.go, api/services.go and api/consul.go Canonicalize methods: the same
defaults, the same inheritance from job to group to task (update, reschedule, migrate, restart), the same order.
This module carries the job, group and task levels and what flows down between them; the structs inside a group or
task are `canonical_blocks`, the defaults `canonical_defaults`. It never mutates its argument.
"""

from __future__ import annotations

import copy

from nomad_operator.jobspec.canonical_blocks import (
    canonicalize_artifact,
    canonicalize_consul,
    canonicalize_multiregion,
    canonicalize_network,
    canonicalize_resources,
    canonicalize_service,
    canonicalize_template,
    default_weights,
)
from nomad_operator.jobspec.canonical_defaults import (
    CSI_PLUGIN_DEFAULTS,
    DEFAULT_CLUSTER,
    EPHEMERAL_DISK_DEFAULTS,
    JOB_DEFAULTS,
    KILL_TIMEOUT,
    LOG_DEFAULTS,
    MIGRATE_DEFAULTS,
    RESCHEDULE_DEFAULTS,
    RESTART_DEFAULTS,
    UPDATE_DEFAULTS,
    VAULT_DEFAULTS,
    VOLUME_MOUNT_DEFAULTS,
    Obj,
    as_object,
    fill,
    filled,
    inherit,
    merge_set,
    new_struct,
    objects_in,
)


def canonicalize(job: Obj) -> Obj:
    """A copy of `job` with every default filled in, as api.Job.Canonicalize leaves it."""
    job = copy.deepcopy(job)
    if job.get("ID") is None:
        job["ID"] = ""
    if job.get("Name") is None:
        job["Name"] = job["ID"]
    fill(job, JOB_DEFAULTS)
    periodic = as_object(job.get("Periodic"))
    if periodic is not None:
        fill(periodic, {"Enabled": True, "SpecType": "cron", "ProhibitOverlap": False})
        if periodic.get("Spec") is None and not periodic.get("Specs"):
            periodic["Spec"] = ""
        if not periodic.get("TimeZone"):
            periodic["TimeZone"] = "UTC"
    update = as_object(job.get("Update"))
    if update is not None:
        fill(update, UPDATE_DEFAULTS)
    elif job["Type"] == "service":
        job["Update"] = new_struct("UpdateStrategy", UPDATE_DEFAULTS)
    multiregion = as_object(job.get("Multiregion"))
    if multiregion is not None:
        canonicalize_multiregion(multiregion)
    for group in objects_in(job.get("TaskGroups")):
        _group(group, job)
    default_weights(job)
    return job


def _group(group: Obj, job: Obj) -> None:
    job_type = str(job["Type"])
    if group.get("Name") is None:
        group["Name"] = ""
    scaling = as_object(group.get("Scaling"))
    if group.get("Count") is None:
        group["Count"] = scaling["Min"] if scaling is not None and scaling.get("Min") is not None else 1
    if scaling is not None:
        fill(scaling, {"Enabled": True, "Min": group["Count"]})
        if not scaling.get("Type"):
            scaling["Type"] = "horizontal"
    group["EphemeralDisk"] = filled(group.get("EphemeralDisk"), "EphemeralDisk", EPHEMERAL_DISK_DEFAULTS)
    consul = as_object(group.get("Consul")) or new_struct("Consul", {})
    if not consul.get("Namespace") and job.get("ConsulNamespace") is not None:
        consul["Namespace"] = job["ConsulNamespace"]
    canonicalize_consul(consul)
    group["Consul"] = consul
    group["Update"] = inherit(job.get("Update"), group.get("Update"), skip_empty_job=True)
    if group["Update"] is not None:
        fill(as_object(group["Update"]) or {}, UPDATE_DEFAULTS)
    reschedule = inherit(job.get("Reschedule"), group.get("ReschedulePolicy"))
    if reschedule is None and job_type != "system":
        reschedule = new_struct("ReschedulePolicy", RESCHEDULE_DEFAULTS.get(job_type, RESCHEDULE_DEFAULTS["other"]))
    if reschedule is not None:
        fill(reschedule, RESCHEDULE_DEFAULTS.get(job_type, RESCHEDULE_DEFAULTS["other"]))
    group["ReschedulePolicy"] = reschedule
    migrate = inherit(job.get("Migrate"), group.get("Migrate"))
    if migrate is None and job_type == "service":
        migrate = new_struct("MigrateStrategy", {})
    if migrate is not None:
        fill(migrate, MIGRATE_DEFAULTS)
    group["Migrate"] = migrate
    restart = new_struct("RestartPolicy", RESTART_DEFAULTS["service" if job_type in ("service", "system") else "batch"])
    merge_set(restart, as_object(group.get("RestartPolicy")))
    group["RestartPolicy"] = restart
    for task in objects_in(group.get("Tasks")):
        _task(task, group, job)
    default_weights(group)
    for network in objects_in(group.get("Networks")):
        canonicalize_network(network)
    for service in objects_in(group.get("Services")):
        canonicalize_service(service, task=None, group=group, job=job)
    fill(group, {"PreventRescheduleOnLost": False})
    disconnect = as_object(group.get("Disconnect"))
    if disconnect is not None:
        fill(disconnect, {"Replace": True, "Reconcile": "best_score"})


def _task(task: Obj, group: Obj, job: Obj) -> None:
    task["Resources"] = canonicalize_resources(as_object(task.get("Resources")) or new_struct("Resources", {}))
    fill(task, {"KillTimeout": KILL_TIMEOUT})
    task["LogConfig"] = filled(task.get("LogConfig"), "LogConfig", LOG_DEFAULTS)
    for artifact in objects_in(task.get("Artifacts")):
        canonicalize_artifact(artifact)
    vault = as_object(task.get("Vault"))
    if vault is not None:
        fill(vault, VAULT_DEFAULTS)
        if not vault.get("Cluster"):
            vault["Cluster"] = DEFAULT_CLUSTER
    consul = as_object(task.get("Consul"))
    if consul is not None:
        canonicalize_consul(consul)
    for template in objects_in(task.get("Templates")):
        canonicalize_template(template)
    for service in objects_in(task.get("Services")):
        canonicalize_service(service, task=task, group=group, job=job)
    default_weights(task)
    for mount in objects_in(task.get("VolumeMounts")):
        fill(mount, VOLUME_MOUNT_DEFAULTS)
    lifecycle = as_object(task.get("Lifecycle"))
    if lifecycle is not None and not lifecycle.get("Hook"):
        task["Lifecycle"] = None
    plugin = as_object(task.get("CSIPluginConfig"))
    if plugin is not None:
        for key, default in CSI_PLUGIN_DEFAULTS.items():
            if not plugin.get(key):
                plugin[key] = default
    restart = dict(as_object(group["RestartPolicy"]) or {})
    merge_set(restart, as_object(task.get("RestartPolicy")))
    task["RestartPolicy"] = restart
