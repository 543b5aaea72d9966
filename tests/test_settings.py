from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-for-the-check-only-0123456789",
    "ALLOWED_HOSTS": "governance.example.org",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deployment_checklist():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", DEBUG="false", ALLOWED_HOSTS="x.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_malformed_setting_is_an_error_at_start_up():
    result = _manage("check", DATASET_MAX_BYTES="lots")
    assert result.returncode != 0
    assert "DATASET_MAX_BYTES='lots' is not an integer" in result.stderr
    result = _manage("check", DATABASE_URL="mysql://u@h/db")
    assert result.returncode != 0
    assert "not supported" in result.stderr
