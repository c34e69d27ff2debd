"""Rule 8: never deploy a job we may have mistranslated.

Our own HCL conversion is the desired-state model, but it is our code, and a gap in it would deploy the wrong job
quietly. Where the cluster offers `/v1/jobs/parse`, the first apply of each new spec hash is checked against Nomad's
own parse of the same text and variables: both sides are canonicalized and our owner meta is ignored; any other
difference stops that job with an error that lists the fields, and the rest of the source carries on. A cluster
without the endpoint (404, 405, 501) is remembered as such and the check is skipped; a setting turns it off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from nomad_operator.controllers.gitops.desired_state import DesiredJob
from nomad_operator.controllers.gitops.owner_meta import strip_owner_meta
from nomad_operator.jobspec import FieldDifference, canonicalize, field_differences
from nomad_operator.nomad import APIError, NomadClient

log = logging.getLogger(__name__)

MISSING_ENDPOINT_STATUSES = frozenset({404, 405, 501})
MAX_LISTED_FIELDS = 10


def variables_text(variables: Mapping[str, str], var_file_texts: list[str]) -> str | None:
    """The variables as the text of one var file, the form `/v1/jobs/parse` takes."""
    lines = [text.rstrip("\n") for text in var_file_texts]
    lines += [f"{name} = {json.dumps(value)}" for name, value in sorted(variables.items())]
    return "\n".join(lines) + "\n" if lines else None


def translation_differences(ours: Mapping[str, Any], nomads: Mapping[str, Any]) -> list[FieldDifference]:
    """Fields where Nomad's parse differs from ours, both canonicalized, owner meta ignored."""
    mine = canonicalize(strip_owner_meta(ours))
    theirs = canonicalize(strip_owner_meta(nomads))
    return field_differences(mine, theirs)


def describe(differences: list[FieldDifference]) -> str:
    shown = "; ".join(str(d) for d in differences[:MAX_LISTED_FIELDS])
    more = f" (and {len(differences) - MAX_LISTED_FIELDS} more)" if len(differences) > MAX_LISTED_FIELDS else ""
    return f"our conversion differs from Nomad's own parse in {len(differences)} field(s): {shown}{more}"


class ParseCheck:
    """Checks each new spec hash once against the cluster's parse; remembers the hashes that passed."""

    def __init__(self, nomad: NomadClient, *, enabled: bool = True) -> None:
        self._nomad = nomad
        self.enabled = enabled
        self.available: bool | None = None  # None until the first call tells
        self._passed: set[str] = set()
        self.calls = 0

    async def check(self, job: DesiredJob, *, variables: str | None) -> str | None:
        """None when the job may be applied, else the error that stops it."""
        if not self.enabled or self.available is False or job.spec_hash in self._passed:
            return None
        self.calls += 1
        try:
            theirs = await self._nomad.parse_job(job.source_text, variables=variables, canonicalize=False)
        except APIError as exc:
            if exc.status in MISSING_ENDPOINT_STATUSES:
                log.info("the cluster has no usable /v1/jobs/parse (%s): translation check skipped", exc.status)
                self.available = False
                return None
            return f"Nomad could not parse {job.path}: {exc.message}"
        self.available = True
        differences = translation_differences(job.job, theirs)
        if differences:
            return describe(differences)
        self._passed.add(job.spec_hash)
        return None
