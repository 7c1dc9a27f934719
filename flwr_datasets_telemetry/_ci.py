"""Which CI runs this process, from each service's own variable (never its value).

Shared by the ``environment`` collector (the ``env.ci`` field) and the one-time notice
(never shown in CI), which must work even when that collector is blocked.
"""

from __future__ import annotations

import os
from typing import Final

#: ``(variable, CI name)``: each service's own marker, as it documents it.
CI_VARIABLES: Final = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab_ci"),
    ("BUILDKITE", "buildkite"),
    ("CIRCLECI", "circleci"),
    ("JENKINS_URL", "jenkins"),
    ("TF_BUILD", "azure_pipelines"),
    ("TRAVIS", "travis"),
)
#: Set by most CI services (and by hand in others): a CI we cannot name.
GENERIC_CI: Final = "CI"

_OFF: Final = frozenset({"", "0", "false", "no", "off"})


def is_set(name: str) -> bool:
    """Whether variable ``name`` is set to something other than empty or a "no"."""
    value = os.environ.get(name)
    return value is not None and value.strip().lower() not in _OFF


def ci_name() -> str | bool:
    """The CI's name, ``"unknown"`` for a generic ``CI=...``, ``False`` for none."""
    for variable, name in CI_VARIABLES:
        if is_set(variable):
            return name
    return "unknown" if is_set(GENERIC_CI) else False
