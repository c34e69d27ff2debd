"""Contract: the ACL token in use, and what Nomad answers without one when ACLs are on.

The operator checks its token at start-up so that a missing or wrong token is a clear error, not a stream of 403s
later; the token's SecretID must never come back in the dict the client returns (it would end up in a log).
"""

from __future__ import annotations

import pytest
from contract_target import Target

from nomad_operator.nomad import BadRequest, NomadClient, PermissionDenied


async def _require_acl(target: Target) -> None:
    if not target.is_real:
        return
    if not target.token:
        pytest.skip("NOMAD_TOKEN is not set")
    async with NomadClient(target.settings()) as nomad:
        try:
            await nomad.acl_token_self()
        except BadRequest as error:  # "ACL support disabled"
            pytest.skip(f"the cluster has ACLs off: {error.message}")


async def test_token_self_describes_the_token_without_its_secret(acl_target: Target) -> None:
    await _require_acl(acl_target)
    async with NomadClient(acl_target.settings()) as nomad:
        token = await nomad.acl_token_self()
    assert token["AccessorID"]
    assert token["Type"] in {"management", "client"}
    assert "SecretID" not in token
    if acl_target.token:
        assert acl_target.token not in repr(token)
    if not acl_target.is_real:
        assert token["Type"] == "management"


async def test_no_token_is_permission_denied(acl_target: Target) -> None:
    await _require_acl(acl_target)
    async with NomadClient(acl_target.settings(anonymous=True)) as nomad:
        with pytest.raises(PermissionDenied) as caught:
            await nomad.acl_token_self()
        assert caught.value.status == 403
        if not acl_target.is_real:  # the anonymous policy of a real cluster may allow reading jobs
            with pytest.raises(PermissionDenied):
                await nomad.list_jobs()


async def test_unknown_token_is_permission_denied_and_not_echoed(acl_target: Target) -> None:
    await _require_acl(acl_target)
    wrong = "11111111-2222-3333-4444-555555555555"
    async with NomadClient(acl_target.settings(token=wrong)) as nomad:
        with pytest.raises(PermissionDenied) as caught:
            await nomad.acl_token_self()
    assert caught.value.message == "ACL token not found"
    assert wrong not in str(caught.value)
