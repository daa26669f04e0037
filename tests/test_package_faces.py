"""Package faces: each package exports its public API with ``__all__`` and shows how to use it.

Covers the systems refactored under issue 24 and the shared layer; add a package here when its
face follows the template (docs/contributing.md).
"""

from __future__ import annotations

import importlib

import pytest

PACKAGES = (
    "provenml.schedules",
    "provenml.selection",
    "provenml.metarl",
    "provenml.explain",
    "provenml.kge",
    "provenml.compiler",
    "provenml.graphpretrain",
    "provenml.federated",
    "provenml.distrl",
    "provenml.ssl",
    "provenml.fewshot",
    "provenml.nn",
    "provenml.rl",
    "provenml.data",
)


@pytest.mark.parametrize("name", PACKAGES)
def test_public_api_resolves_and_is_documented(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names {missing}, which {name} does not define"
    doc = package.__doc__ or ""
    assert f"from {name} import" in doc, f"{name}'s docstring shows no usage example"


def test_metarl_environments_from_the_package() -> None:
    from provenml.metarl import SessionGridWorld, SessionReacher

    for env_cls in (SessionGridWorld, SessionReacher):
        obs, _ = env_cls().reset(seed=0)
        assert env_cls().observation_space.contains(obs)
