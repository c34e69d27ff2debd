"""The pure parts of leader election: settings, the local deadline, lock-feature detection, and lease takeover."""

from __future__ import annotations

import pytest

from nomad_operator.nomad import APIError, BadRequest, NotFound, ServerError
from nomad_operator.runtime.leader_backends import holder_of, lock_feature_missing
from nomad_operator.runtime.leader_timing import (
    ElectionMode,
    ElectionSettingsError,
    LeaderElectionConfig,
    LeaderTerm,
)
from nomad_operator.runtime.lease import LeaseObservation, LeaseRecord, may_take_over, observe


def test_defaults_meet_the_failover_target_and_stop_before_the_lock_ends() -> None:
    config = LeaderElectionConfig()
    assert (config.path, config.ttl) == ("nomad-operator/leader", 15.0)
    assert config.renew_after_s == pytest.approx(10.5)
    # After SIGKILL: TTL + LockDelay + one standby poll must stay within TTL + 5 s.
    assert config.lock_delay_s + config.standby_poll_s < 5.0
    term = LeaderTerm.start(100.0, config)
    assert term.deadline == pytest.approx(100.0 + 15.0 - 1.5)
    assert term.renew_at < term.deadline < 100.0 + config.ttl_s


def test_scaled_timings_follow_the_simulators_lock_time_scale() -> None:
    config = LeaderElectionConfig(ttl=10, lock_delay=3, time_scale=0.1)
    assert config.ttl_s == pytest.approx(1.0)
    assert config.margin_s == pytest.approx(0.1)
    assert config.lock_delay_s == pytest.approx(0.3)
    assert config.standby_poll_s == pytest.approx(0.1)


def test_a_term_is_valid_only_before_its_deadline_and_renewals_never_shorten_it() -> None:
    term = LeaderTerm(confirmed_at=10.0, ttl=15.0, margin=1.5, renew_after=10.5)
    assert term.valid_at(23.49)
    assert not term.valid_at(23.5)
    later = term.renewed(20.0)
    assert later.deadline == pytest.approx(33.5)
    assert later.renewed(12.0) == later  # a late answer to an older renew must not pull the deadline back


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 5}, "ttl must be between 10s"),
        ({"ttl": 100_000}, "ttl must be between"),
        ({"lock_delay": -1}, "lock_delay must not be negative"),
        ({"renew_fraction": 0.95}, "renew_fraction must be in"),
        ({"safety_margin_fraction": 0}, "safety_margin_fraction"),
        ({"renew_retry_fraction": 1.5}, "renew_retry_fraction"),
        ({"standby_poll": 0}, "standby_poll must be greater than 0"),
        ({"time_scale": -1}, "time_scale must be greater than 0"),
        ({"lease_path": "nomad-operator/leader"}, "path and lease_path must be set and differ"),
    ],
)
def test_settings_that_cannot_work_are_refused_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ElectionSettingsError, match=message):
        LeaderElectionConfig(**options)  # type: ignore[arg-type]


def test_settings_from_the_environment() -> None:
    config = LeaderElectionConfig.from_env(
        {"NOMAD_OPERATOR_LEADER_MODE": "Lease", "NOMAD_OPERATOR_LEADER_TTL": "20s", "NOMAD_OPERATOR_LEADER_PATH": "x/y"}
    )
    assert (config.mode, config.ttl, config.path) == (ElectionMode.LEASE, 20.0, "x/y")
    assert LeaderElectionConfig.from_env({}) == LeaderElectionConfig()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NOMAD_OPERATOR_LEADER_MODE": "raft"}, "MODE must be one of auto, lock, lease"),
        ({"NOMAD_OPERATOR_LEADER_TTL": "soon"}, "TTL must be a number of seconds"),
        ({"NOMAD_OPERATOR_LEADER_LOCK_DELAY": "-2"}, "lock_delay must not be negative"),
    ],
)
def test_bad_environment_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ElectionSettingsError, match=message):
        LeaderElectionConfig.from_env(environ)


@pytest.mark.parametrize(
    ("error", "missing"),
    [
        (NotFound(404, "Invalid URL", "/v1/var/x"), True),
        (APIError(405, "Invalid method", "/v1/var/x"), True),
        (BadRequest(400, "variable missing required Items object", "/v1/var/x"), True),
        (BadRequest(400, "TTL must be between 10 seconds and 24 hours", "/v1/var/x"), False),
        (BadRequest(400, "lock TTL and LockDelay can't be negative", "/v1/var/x"), False),
        (ServerError(500, "no cluster leader", "/v1/var/x"), False),
    ],
)
def test_which_answers_show_a_nomad_without_locks(error: APIError, missing: bool) -> None:
    assert lock_feature_missing(error) is missing


def test_holder_is_read_from_visible_items_only() -> None:
    assert holder_of({"Items": {"holder": "pi1-7-ab"}}) == "pi1-7-ab"
    assert holder_of({"ModifyIndex": 3}) is None
    assert holder_of(None) is None


def test_a_lease_may_be_taken_when_absent_released_ours_or_silent_for_the_holders_ttl_plus_margin() -> None:
    def seen(holder: str | None, ttl: float = 15.0) -> LeaseObservation:
        record = None if holder is None else LeaseRecord(holder=holder, ttl=ttl)
        return LeaseObservation(modify_index=7, record=record, first_seen=100.0)

    options = {"identity": "me", "margin": 1.5, "time_scale": 1.0}
    assert may_take_over(seen(None), now=100.0, **options)  # type: ignore[arg-type]
    assert may_take_over(seen(""), now=100.0, **options)  # type: ignore[arg-type]
    assert may_take_over(seen("me"), now=100.0, **options)  # type: ignore[arg-type]
    assert not may_take_over(seen("other"), now=116.4, **options)  # type: ignore[arg-type]
    assert may_take_over(seen("other"), now=116.5, **options)  # type: ignore[arg-type]
    # The holder's own TTL counts, not ours.
    assert not may_take_over(seen("other", ttl=60), now=150.0, **options)  # type: ignore[arg-type]


def test_an_unchanged_index_keeps_its_first_sighting_and_a_new_one_restarts_the_count() -> None:
    record = LeaseRecord(holder="other", ttl=15.0)
    first = observe(None, modify_index=7, record=record, now=100.0)
    assert observe(first, modify_index=7, record=record, now=110.0).first_seen == 100.0
    assert observe(first, modify_index=8, record=record, now=110.0).first_seen == 110.0


@pytest.mark.parametrize(
    "items",
    [None, {"holder": 5, "ttl_seconds": "15"}, {"holder": "x", "ttl_seconds": "soon"}, {"ttl_seconds": "-3"}],
)
def test_a_damaged_lease_counts_as_held_never_as_free(items: dict[str, object] | None) -> None:
    record = LeaseRecord.from_items(items, fallback_ttl=15.0)
    assert record.holder != ""
    assert record.ttl > 0
    assert not may_take_over(
        LeaseObservation(modify_index=1, record=record, first_seen=0.0),
        identity="me",
        now=1.0,
        margin=1.5,
        time_scale=1.0,
    )


def test_lease_records_round_trip_through_variable_items() -> None:
    items = LeaseRecord(holder="pi2-9-cd", ttl=15.0).to_items(acquired_at="t0", renewed_at="t1")
    assert items == {"holder": "pi2-9-cd", "ttl_seconds": "15", "acquired_at": "t0", "renewed_at": "t1"}
    assert LeaseRecord.from_items(items, fallback_ttl=99.0) == LeaseRecord(holder="pi2-9-cd", ttl=15.0)
