"""The auditor's desk in a real browser: upload a report to verify it (and a
tampered copy), verify the audit trail, and download a version's evidence bundle.

Each step saves a screenshot under test-artifacts/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from governance.models import AuditEvent, Report
from tests.browser.conftest import (
    ContextFactory,
    Governed,
    Screenshot,
    admin_login,
)

# Real commits, so the live server's thread sees what the test wrote (see
# test_journeys.py for why serialized_rollback).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_an_auditor_verifies_a_pdf_and_the_trail_and_downloads_the_bundle(
    governed: Governed,
    new_context: ContextFactory,
    screenshot: Screenshot,
    tmp_path: Path,
) -> None:
    version, dossier = governed.version, governed.dossier
    certificate = Report.objects.get(kind=Report.Kind.CERTIFICATE, certifies=dossier)
    stored = Path(settings.MEDIA_ROOT) / dossier.file_path
    page = admin_login(new_context(), "auditor")

    page.goto("/admin/governance/report/")
    page.get_by_role("link", name="Verify a PDF…").click()
    expect(page.locator("#content h1")).to_have_text("Verify a PDF")
    page.set_input_files("#id_pdf", str(stored))
    page.click("#verify-submit")
    expect(page.locator("#verify-verdict")).to_contain_text("Verified.")
    expect(page.locator("#verify-sha256")).to_have_text(dossier.sha256)
    expect(page.locator("#verify-report")).to_contain_text(dossier.reference)
    expect(page.locator("#verify-findings")).to_contain_text(
        f"CERTIFICATE: {certificate.reference}"
    )
    screenshot(page, "05-auditor-verify-pdf")

    tampered = bytearray(stored.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    page.set_input_files(
        "#id_pdf",
        files=[
            {
                "name": "copy.pdf",
                "mimeType": "application/pdf",
                "buffer": bytes(tampered),
            }
        ],
    )
    page.click("#verify-submit")
    expect(page.locator("#verify-verdict")).to_contain_text(
        "Not verified. NOT a report of this system"
    )
    screenshot(page, "06-auditor-verify-tampered")

    page.goto("/admin/governance/report/")
    page.get_by_role("link", name="Verify the audit trail…").click()
    page.click("#audit-verify-start")
    # Without a broker the run happens in the request; with one, the page
    # refreshes itself until the worker is done.
    expect(page.locator("#audit-verdict")).to_contain_text("Intact.")
    checked = AuditEvent.objects.count()
    expect(page.locator("#audit-checked")).to_have_text(
        f"{checked} of {checked} (100%)"
    )
    expect(page.locator("#audit-broken")).to_have_text("none")
    screenshot(page, "07-auditor-audit-trail-verified")

    page.goto(f"/admin/governance/modelversion/{version.pk}/change/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Evidence bundle (zip)").click()
    download = download_info.value
    assert download.suggested_filename == f"evidence-{version.name}.zip"
    screenshot(page, "08-auditor-evidence-bundle")
    with zipfile.ZipFile(download.path()) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
        for entry in manifest["files"]:
            data = bundle.read(entry["path"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert bundle.read(f"reports/{dossier.reference}.pdf") == stored.read_bytes()
        assert f"certificates/{certificate.reference}.pdf" in bundle.namelist()
        assert "sha256sum -c SHA256SUMS" in bundle.read("README.txt").decode()
