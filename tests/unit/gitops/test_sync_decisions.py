"""Pure decisions of the GitOps sync: owner meta, desired state, the sync plan and the prune guard."""

from __future__ import annotations

from typing import Any

import pytest

from nomad_operator.controllers.gitops.defaults import META_SOURCE, META_SPEC_HASH, META_WAVE
from nomad_operator.controllers.gitops.desired_state import DesiredState, build_desired_state, wave_of
from nomad_operator.controllers.gitops.owner_meta import OwnerMark, owner_of, strip_owner_meta, with_owner_meta
from nomad_operator.controllers.gitops.prune_guard import PruneDecision, PruneGuard, PrunePolicy
from nomad_operator.controllers.gitops.sync_plan import ActionKind, LiveJob, plan_sync, prune_candidates
from nomad_operator.jobspec import JobspecError, LoadedJob, spec_hash

SOURCE = "default/cluster"


def loaded(job_id: str, *, path: str | None = None, image: str = "a:1", namespace: str = "default",
           meta: dict[str, str] | None = None) -> LoadedJob:  # fmt: skip
    job: dict[str, Any] = {"ID": job_id, "Name": job_id, "Namespace": namespace, "Meta": meta,
                           "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Config": {"image": image}}]}]}
    return LoadedJob(job=job, job_id=job_id, namespace=namespace, source_path=path or f"jobs/{job_id}.nomad",
                     spec_hash=spec_hash(job), source_text=f'job "{job_id}" {{}}')  # fmt: skip


def desired(*jobs: LoadedJob, errors: dict[str, str] | None = None, revision: str = "r1") -> DesiredState:
    files: list[tuple[str, LoadedJob | JobspecError]] = [(j.source_path, j) for j in jobs]
    files += [(path, JobspecError(text)) for path, text in (errors or {}).items()]
    return build_desired_state(source=SOURCE, revision=revision, files=files,
                               allowed_namespace=lambda ns: ns == "default")  # fmt: skip


def live_owned(job: LoadedJob, *, source: str = SOURCE, spec: str | None = None, stop: bool = False) -> LiveJob:
    mark = OwnerMark(source=source, revision="r0", path=job.source_path, spec_hash=spec or job.spec_hash)
    return LiveJob(key=(job.namespace, job.job_id), job_modify_index=10, owner=mark, stop=stop)


NO_PRUNE = PruneDecision()


def test_owner_meta_round_trip_keeps_user_meta_and_strips_only_ours() -> None:
    job = {"ID": "web", "Meta": {"team": "ops"}}
    mark = OwnerMark(source=SOURCE, revision="abc", path="jobs/web.nomad", spec_hash="h1")
    marked = with_owner_meta(job, mark)
    assert owner_of(marked) == mark
    assert marked["Meta"]["team"] == "ops"
    assert job["Meta"] == {"team": "ops"}  # the input is not mutated
    assert strip_owner_meta(marked)["Meta"] == {"team": "ops"}
    assert strip_owner_meta(with_owner_meta({"ID": "x", "Meta": None}, mark))["Meta"] is None


def test_partial_owner_meta_is_not_ownership() -> None:
    assert owner_of({"Meta": {META_SOURCE: SOURCE}}) is None
    assert owner_of({"Meta": {META_SOURCE: SOURCE, META_SPEC_HASH: ""}}) is None
    assert owner_of({"Meta": None}) is None


def test_spec_hash_is_computed_without_owner_meta() -> None:
    state = desired(loaded("web"))
    job = state.jobs[("default", "web")]
    assert job.spec_hash == spec_hash(dict(job.job))
    assert job.marked_job["Meta"][META_SPEC_HASH] == job.spec_hash
    assert spec_hash(dict(job.marked_job)) != job.spec_hash
    # The same spec at another revision has the same hash: a new commit alone never re-registers.
    assert desired(loaded("web"), revision="r2").jobs[("default", "web")].spec_hash == job.spec_hash


def test_duplicate_job_ids_are_an_error_for_both_files() -> None:
    state = desired(loaded("web", path="jobs/a.nomad"), loaded("web", path="jobs/b.nomad"), loaded("api"))
    assert ("default", "web") not in state.jobs
    assert set(state.errors) == {"jobs/a.nomad", "jobs/b.nomad"}
    assert "several files" in state.errors["jobs/a.nomad"]
    assert ("default", "api") in state.jobs
    assert not state.complete


def test_namespace_outside_the_allowed_ones_is_refused() -> None:
    state = desired(loaded("web", namespace="prod"))
    assert not state.jobs
    assert "may not write" in state.errors["jobs/web.nomad"]


def test_wave_meta_must_be_an_integer() -> None:
    assert wave_of({"Meta": {META_WAVE: "3"}}) == 3
    assert wave_of({"Meta": None}) == 0
    with pytest.raises(ValueError, match="integer"):
        wave_of({"Meta": {META_WAVE: "first"}})
    state = desired(loaded("web", meta={META_WAVE: "soon"}))
    assert "integer" in state.errors["jobs/web.nomad"]


def test_plan_creates_updates_and_leaves_alone() -> None:
    web, api, db = loaded("web"), loaded("api"), loaded("db")
    state = desired(web, api, db)
    live = {("default", "api"): live_owned(api), ("default", "db"): live_owned(db, spec="old")}
    plan = plan_sync(state, live, adopt=False, prune=NO_PRUNE)
    kinds = {action.key[1]: action.kind for action in plan.actions}
    assert kinds == {"web": ActionKind.CREATE, "api": ActionKind.UNCHANGED, "db": ActionKind.UPDATE}
    assert plan.has_changes


def test_plan_with_everything_in_sync_has_no_writes() -> None:
    web = loaded("web")
    plan = plan_sync(desired(web), {("default", "web"): live_owned(web)}, adopt=False, prune=NO_PRUNE)
    assert not plan.has_changes
    assert plan.counts()["unchanged"] == 1


def test_unowned_job_is_a_conflict_unless_adopt() -> None:
    web = loaded("web")
    live = {("default", "web"): LiveJob(key=("default", "web"), job_modify_index=5, owner=None)}
    assert plan_sync(desired(web), live, adopt=False, prune=NO_PRUNE).actions[0].kind is ActionKind.CONFLICT
    assert plan_sync(desired(web), live, adopt=True, prune=NO_PRUNE).actions[0].kind is ActionKind.ADOPT


def test_job_owned_by_another_source_is_a_conflict_even_with_adopt() -> None:
    web = loaded("web")
    live = {("default", "web"): live_owned(web, source="default/other", spec="x")}
    action = plan_sync(desired(web), live, adopt=True, prune=NO_PRUNE).actions[0]
    assert action.kind is ActionKind.CONFLICT
    assert "default/other" in action.reason


def test_drift_is_healed_only_with_self_heal() -> None:
    web = loaded("web")
    live = {("default", "web"): live_owned(web)}
    drift = {("default", "web"): "1 field(s): Config.image"}
    healed = plan_sync(desired(web), live, adopt=False, prune=NO_PRUNE, drifted=drift, self_heal=True)
    assert healed.actions[0].kind is ActionKind.UPDATE
    kept = plan_sync(desired(web), live, adopt=False, prune=NO_PRUNE, drifted=drift, self_heal=False)
    assert kept.actions[0].kind is ActionKind.BLOCKED


def test_held_job_is_blocked_and_others_proceed() -> None:
    web, api = loaded("web"), loaded("api")
    plan = plan_sync(desired(web, api), {}, adopt=False, prune=NO_PRUNE, held={("default", "web"): "parse differs"})
    kinds = {action.key[1]: action.kind for action in plan.actions}
    assert kinds == {"web": ActionKind.BLOCKED, "api": ActionKind.CREATE}


def test_waves_order_writes_lowest_first() -> None:
    jobs = [loaded("c", meta={META_WAVE: "3"}), loaded("a", meta={META_WAVE: "1"}), loaded("b")]
    plan = plan_sync(desired(*jobs), {}, adopt=False, prune=NO_PRUNE)
    assert [(wave, [a.key[1] for a in actions]) for wave, actions in plan.waves()] == [(0, ["b"]), (1, ["a"]),
                                                                                        (3, ["c"])]  # fmt: skip


POLICY = PrunePolicy(enabled=True, grace_seconds=60.0, max_share=0.5)


def test_prune_candidates_are_only_running_jobs_of_this_source() -> None:
    web, old, other, stopped = loaded("web"), loaded("old"), loaded("theirs"), loaded("stopped")
    live = {("default", "web"): live_owned(web), ("default", "old"): live_owned(old),
            ("default", "theirs"): live_owned(other, source="default/other"),
            ("default", "stopped"): live_owned(stopped, stop=True),
            ("default", "manual"): LiveJob(key=("default", "manual"), job_modify_index=1, owner=None)}  # fmt: skip
    missing, total = prune_candidates(desired(web), live, source=SOURCE)
    assert missing == [("default", "old")]
    assert total == 2


def test_prune_waits_for_the_grace_period_from_first_absence() -> None:
    guard = PruneGuard()
    first = guard.decide(missing=[("default", "old")], owned_total=4, complete=True, error_count=0, policy=POLICY,
                         now=100.0)  # fmt: skip
    assert first.prune == ()
    assert "grace" in first.blocked[("default", "old")]
    later = guard.decide(missing=[("default", "old")], owned_total=4, complete=True, error_count=0, policy=POLICY,
                         now=161.0)  # fmt: skip
    assert later.prune == (("default", "old"),)


def test_prune_clock_restarts_when_the_job_comes_back() -> None:
    guard = PruneGuard()
    guard.decide(missing=[("default", "old")], owned_total=4, complete=True, error_count=0, policy=POLICY, now=0.0)
    guard.decide(missing=[], owned_total=4, complete=True, error_count=0, policy=POLICY, now=30.0)
    again = guard.decide(missing=[("default", "old")], owned_total=4, complete=True, error_count=0, policy=POLICY,
                         now=70.0)  # fmt: skip
    assert again.prune == ()


def test_nothing_is_pruned_when_prune_is_off_or_a_file_failed() -> None:
    guard = PruneGuard()
    off = PrunePolicy(enabled=False, grace_seconds=0.0, max_share=1.0)
    result = guard.decide(missing=[("default", "old")], owned_total=2, complete=True, error_count=0, policy=off,
                          now=0.0)  # fmt: skip
    assert result.prune == ()
    assert "prune is off" in result.blocked[("default", "old")]
    on = PrunePolicy(enabled=True, grace_seconds=0.0, max_share=1.0)
    broken = guard.decide(missing=[("default", "old")], owned_total=2, complete=False, error_count=1, policy=on,
                          now=1000.0)  # fmt: skip
    assert broken.prune == ()
    assert "failed" in broken.blocked[("default", "old")]


def test_share_limit_blocks_mass_prune_unless_forced() -> None:
    missing = [("default", f"j{i}") for i in range(3)]
    policy = PrunePolicy(enabled=True, grace_seconds=0.0, max_share=0.5)
    blocked = PruneGuard().decide(missing=missing, owned_total=4, complete=True, error_count=0, policy=policy, now=0)
    assert blocked.prune == ()
    assert "share" in blocked.blocked[missing[0]]
    forced = PrunePolicy(enabled=True, grace_seconds=0.0, max_share=0.5, force=True)
    allowed = PruneGuard().decide(missing=missing, owned_total=4, complete=True, error_count=0, policy=forced, now=0)
    assert allowed.prune == tuple(missing)


def test_plan_includes_prunes_and_blocked_prunes_with_reasons() -> None:
    web = loaded("web")
    decision = PruneDecision(prune=(("default", "old"),), blocked={("default", "older"): "not in git; prune is off"})
    plan = plan_sync(desired(web), {}, adopt=False, prune=decision)
    assert [a.kind for a in plan.of_kind(ActionKind.PRUNE)] == [ActionKind.PRUNE]
    assert plan.of_kind(ActionKind.BLOCKED)[0].reason == "not in git; prune is off"
