"""Webhook providers without a server: detection order, signatures, event parsing and ref matching."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nomad_operator.server.webhook_providers import (
    EventKind,
    PayloadError,
    Provider,
    RefUpdate,
    detect_provider,
    has_signature,
    hmac_sha256_hex,
    parse_event,
    ref_is_followed,
    signed_headers,
    verify,
)

SECRET = b"s3cret"
SIGNED = [p for p in Provider if p is not Provider.AUTO]
SHA = "1234567890abcdef1234567890abcdef12345678"


def push_body(provider: Provider, ref: str = "refs/heads/main", after: str = SHA) -> bytes:
    if provider is Provider.BITBUCKET:
        kind, _, name = ref.removeprefix("refs/").partition("/")
        change = {"new": {"type": "branch" if kind == "heads" else "tag", "name": name, "target": {"hash": after}}}
        return json.dumps({"push": {"changes": [change]}}).encode()
    if provider is Provider.GITLAB:
        return json.dumps({"object_kind": "push", "ref": ref, "checkout_sha": after, "after": after}).encode()
    return json.dumps({"ref": ref, "after": after}).encode()


def test_hmac_matches_a_known_vector() -> None:
    # RFC 4231 test case 2
    assert hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


@pytest.mark.parametrize("provider", SIGNED)
def test_detection_picks_the_sender_despite_imitated_headers(provider: Provider) -> None:
    assert detect_provider(signed_headers(provider, SECRET, b"{}")) is provider


def test_detection_is_case_insensitive_and_none_without_known_headers() -> None:
    assert detect_provider({"x-gitlab-event": "Push Hook"}) is Provider.GITLAB
    assert detect_provider({"Content-Type": "application/json"}) is None


@pytest.mark.parametrize("provider", SIGNED)
def test_each_provider_verifies_its_own_signature(provider: Provider) -> None:
    body = push_body(provider)
    headers = signed_headers(provider, SECRET, body)
    assert has_signature(provider, headers)
    assert verify(provider, headers, body, SECRET)
    assert not verify(provider, headers, body, b"other secret")
    if provider is not Provider.GITLAB:  # GitLab's token does not cover the body
        assert not verify(provider, headers, body + b" ", SECRET)


@pytest.mark.parametrize("provider", SIGNED)
def test_missing_signature_is_told_apart(provider: Provider) -> None:
    headers = {
        k: v for k, v in signed_headers(provider, SECRET, b"{}").items() if "Signature" not in k and "Token" not in k
    }
    assert not has_signature(provider, headers)
    assert not verify(provider, headers, b"{}", SECRET)


def test_empty_secret_never_verifies() -> None:
    headers = signed_headers(Provider.GITHUB, b"", b"{}")
    assert not verify(Provider.GITHUB, headers, b"{}", b"")


def test_signature_format_is_strict_about_the_scheme() -> None:
    body = b"{}"
    digest = hmac_sha256_hex(SECRET, body)
    assert verify(Provider.GITHUB, {"X-Hub-Signature-256": f"sha256={digest.upper()}"}, body, SECRET)
    assert not verify(Provider.GITHUB, {"X-Hub-Signature-256": digest}, body, SECRET)
    assert not verify(Provider.GITHUB, {"X-Hub-Signature-256": f"sha1={digest}"}, body, SECRET)


def test_forgejo_header_counts_over_the_gitea_one() -> None:
    body = b"{}"
    headers = signed_headers(Provider.FORGEJO, SECRET, body)
    headers["X-Forgejo-Signature"] = "0" * 64
    assert not verify(Provider.FORGEJO, headers, body, SECRET)  # a good Gitea header does not rescue it


@pytest.mark.parametrize("provider", SIGNED)
def test_push_events_carry_ref_and_commit(provider: Provider) -> None:
    body = push_body(provider, "refs/tags/v1")
    event = parse_event(provider, signed_headers(provider, SECRET, body), body)
    assert event.kind is EventKind.PUSH
    assert event.updates == (RefUpdate(ref="refs/tags/v1", after=SHA),)


@pytest.mark.parametrize(
    ("provider", "event"),
    [(Provider.GITHUB, "ping"), (Provider.BITBUCKET, "diagnostics:ping")],
)
def test_ping_events(provider: Provider, event: str) -> None:
    assert parse_event(provider, signed_headers(provider, SECRET, b"{}", event=event), b"{}").kind is EventKind.PING
    generic = json.dumps({"event": "ping"}).encode()
    assert parse_event(Provider.GENERIC, {}, generic).kind is EventKind.PING


@pytest.mark.parametrize(
    ("provider", "event"),
    [
        (Provider.GITHUB, "issues"),
        (Provider.GITLAB, "Merge Request Hook"),
        (Provider.GITEA, "create"),
        (Provider.FORGEJO, "pull_request"),
        (Provider.BITBUCKET, "pullrequest:created"),
    ],
)
def test_other_events_are_other(provider: Provider, event: str) -> None:
    parsed = parse_event(provider, signed_headers(provider, SECRET, b"{}", event=event), b"{}")
    assert parsed.kind is EventKind.OTHER
    assert parsed.name == event


def test_gitlab_system_hook_and_tag_push() -> None:
    body = json.dumps({"object_kind": "tag_push", "ref": "refs/tags/v2", "checkout_sha": SHA}).encode()
    assert parse_event(Provider.GITLAB, {"X-Gitlab-Event": "System Hook"}, body).updates[0].ref == "refs/tags/v2"
    assert parse_event(Provider.GITLAB, {"X-Gitlab-Event": "Tag Push Hook"}, body).kind is EventKind.PUSH


def test_deleted_refs_are_marked() -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40, "deleted": True}).encode()
    update = parse_event(Provider.GITHUB, {"X-GitHub-Event": "push"}, body).updates[0]
    assert update == RefUpdate(ref="refs/heads/main", after=None, deleted=True)
    bitbucket = json.dumps({"push": {"changes": [{"new": None, "old": {"type": "branch", "name": "main"}}]}}).encode()
    assert parse_event(Provider.BITBUCKET, {"X-Event-Key": "repo:push"}, bitbucket).updates == (
        RefUpdate(ref="refs/heads/main", after=None, deleted=True),
    )


def test_bitbucket_push_with_several_changes() -> None:
    changes = [
        {"new": {"type": "branch", "name": "dev", "target": {"hash": "a" * 40}}},
        {"new": {"type": "tag", "name": "v3", "target": {"hash": "b" * 40}}},
        {"new": {"type": "named_branch", "name": "hg"}},
    ]
    body = json.dumps({"push": {"changes": changes}}).encode()
    assert [u.ref for u in parse_event(Provider.BITBUCKET, {"X-Event-Key": "repo:push"}, body).updates] == [
        "refs/heads/dev",
        "refs/tags/v3",
    ]


@pytest.mark.parametrize(
    ("provider", "body", "message"),
    [
        (Provider.GITHUB, b"not json", "not JSON"),
        (Provider.GITHUB, b"[1]", "not a JSON object"),
        (Provider.GITHUB, b"{}", "no 'ref'"),
        (Provider.BITBUCKET, b'{"push": {}}', "push.changes"),
        (Provider.GENERIC, b'{"after": "x"}', "no 'ref'"),
    ],
)
def test_malformed_push_bodies_are_payload_errors(provider: Provider, body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_event(provider, signed_headers(provider, SECRET, body), body)


@pytest.mark.parametrize(
    ("source_ref", "pushed", "expected"),
    [
        ("main", "refs/heads/main", True),
        ("main", "refs/tags/main", True),
        ("main", "refs/heads/mainline", False),
        ("main", "refs/heads/feature/main", False),
        ("refs/heads/main", "refs/tags/main", False),
        ("refs/tags/v1", "refs/tags/v1", True),
        (SHA, f"refs/heads/{SHA}", False),
    ],
)
def test_ref_is_followed(source_ref: str, pushed: str, expected: bool) -> None:
    assert ref_is_followed(source_ref, pushed) is expected


@given(body=st.binary(max_size=512), secret=st.binary(min_size=1, max_size=64))
def test_every_hmac_provider_accepts_what_it_signs(body: bytes, secret: bytes) -> None:
    for provider in (Provider.GITHUB, Provider.GITEA, Provider.FORGEJO, Provider.BITBUCKET, Provider.GENERIC):
        assert verify(provider, signed_headers(provider, secret, body), body, secret)
