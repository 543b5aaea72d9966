"""Shared fixtures. Services that a test needs but this machine lacks are skipped
locally with the reason, and fail in CI (CI=true), where .ci/run provides them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent
ADULT_SPEC = ROOT / "data" / "specs" / "adult.toml"


def require_service(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        message = f"{what} not available: {variable} is unset (make test starts it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return value


@pytest.fixture(autouse=True)
def _media_root(tmp_path: Path, settings: object) -> Path:
    # Each test writes stored files under its own folder.
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def user_in_role(db: None):
    def make(role: str, **kwargs: object):
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def adult_dataset(db: None):
    from governance.services.datasets import dataset_import_file

    return dataset_import_file(spec_path=ADULT_SPEC, actor="test")


__all__ = ["ADULT_SPEC", "ROOT", "require_service", "settings"]
