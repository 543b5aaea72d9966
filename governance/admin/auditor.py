"""The auditor's tools in the browser: verify a PDF, verify the audit trail, and
download a version's evidence bundle. Thin: each calls the service the command
line uses (verify_report, verify_audit, evidence_bundle) and shows its answer.

Wired in by the ModelAdmins whose pages link to them (reports.py, audit.py,
versions.py), under their admin URLs.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from governance.admin.common import error_text
from governance.models import AuditEvent, ModelVersion, Report
from governance.services.evidence import evidence_bundle_write
from governance.services.verification import (
    PDF_MAGIC,
    audit_verification_start,
    audit_verification_status,
    looks_like_pdf,
    report_verification,
)

# Beside the file: the CSRF token, the multipart framing and the file's headers.
_FORM_OVERHEAD_BYTES = 64 * 1024
# How often the verification page reloads itself while the run is under way (a
# meta refresh: the CSP allows no inline script).
REFRESH_SECONDS = 2


class VerifyPdfForm(forms.Form):
    pdf = forms.FileField(
        label="PDF to verify",
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
    )

    def clean_pdf(self) -> bytes:
        """The file's bytes: bounded, and a PDF by its first bytes (not its name
        or declared type). The temporary copy Django made goes with the request."""
        upload = self.cleaned_data["pdf"]
        limit = settings.REPORT_VERIFY_MAX_BYTES
        if upload.size > limit:
            raise ValidationError(
                f"The file is {upload.size:,} bytes, over the {limit:,} bytes this "
                "page accepts (REPORT_VERIFY_MAX_BYTES). Nothing was kept."
            )
        if not looks_like_pdf(upload.read(len(PDF_MAGIC))):
            raise ValidationError(
                "This is not a PDF: the file does not start with %PDF-. Nothing "
                "was kept."
            )
        upload.seek(0)
        return upload.read()


def _page(
    request: HttpRequest, template: str, context: dict[str, Any], status: int = 200
) -> TemplateResponse:
    return TemplateResponse(
        request,
        template,
        {**admin.site.each_context(request), **context},
        status=status,
    )


def _verify_page(
    request: HttpRequest, form: VerifyPdfForm, status: int = 200, **context: Any
) -> TemplateResponse:
    return _page(
        request,
        "admin/governance/report_verify.html",
        {
            "title": "Verify a PDF",
            "opts": Report._meta,
            "form": form,
            "max_bytes": settings.REPORT_VERIFY_MAX_BYTES,
            **context,
        },
        status,
    )


@csrf_protect
def _report_verify(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _verify_page(request, VerifyPdfForm())
    form = VerifyPdfForm(request.POST, request.FILES)
    if not form.is_valid():
        return _verify_page(request, form, status=400)
    verification = report_verification(form.cleaned_data["pdf"])
    return _verify_page(
        request, VerifyPdfForm(), verification=verification, uploaded=True
    )


@csrf_exempt  # checked by _report_verify, once the size is known to be bounded
def report_verify_view(request: HttpRequest) -> HttpResponse:
    """Upload a PDF and see what verify_report says of it. Whoever may view
    reports may ask; the file is hashed in memory, never stored nor rendered."""
    if not request.user.has_perm("governance.view_report"):
        raise PermissionDenied
    # Refused on the declared length, before a byte of the body is read (CSRF
    # middleware would otherwise parse it into a temporary file first).
    declared = request.META.get("CONTENT_LENGTH") or "0"
    limit = settings.REPORT_VERIFY_MAX_BYTES
    if request.method == "POST" and (
        not declared.isdigit() or int(declared) > limit + _FORM_OVERHEAD_BYTES
    ):
        form = VerifyPdfForm()
        form.errors["pdf"] = form.error_class(
            [
                f"The upload is {declared} bytes, over the {limit:,} bytes this page "
                "accepts (REPORT_VERIFY_MAX_BYTES). Nothing was read."
            ]
        )
        return _verify_page(request, form, status=413)
    return _report_verify(request)


# --- The audit trail -------------------------------------------------------------


def audit_verify_view(request: HttpRequest) -> HttpResponse:
    """GET: what the check does and a button; POST: start a run (or join the one
    under way) and follow it on its page."""
    if not request.user.has_perm("governance.view_auditevent"):
        raise PermissionDenied
    if request.method == "POST":
        run_id = audit_verification_start(actor=request.user)
        return HttpResponseRedirect(
            reverse("admin:governance_auditevent_verify_run", args=[run_id])
        )
    return _page(
        request,
        "admin/governance/audit_verify.html",
        {"title": "Verify the audit trail", "opts": AuditEvent._meta, "run": None},
    )


def audit_verify_run_view(request: HttpRequest, run_id: str) -> HttpResponse:
    if not request.user.has_perm("governance.view_auditevent"):
        raise PermissionDenied
    try:
        run = audit_verification_status(run_id)
    except ValueError:
        run = None
    if run is None:
        raise Http404("no such verification run")
    under_way = run["state"] in ("queued", "running") and not run["stale"]
    return _page(
        request,
        "admin/governance/audit_verify.html",
        {
            "title": "Verify the audit trail",
            "opts": AuditEvent._meta,
            "run": run,
            "refresh": REFRESH_SECONDS if under_way else None,
        },
    )


# --- A version's evidence bundle -----------------------------------------------


def may_download_evidence(user: Any) -> bool:
    """Its PDFs are downloads (officers, auditors) and it holds audit events."""
    return all(
        user.has_perm(name)
        for name in (
            "governance.view_modelversion",
            "governance.download_report",
            "governance.view_auditevent",
        )
    )


def evidence_bundle_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The version's evidence bundle as a zip download, built in a temporary file
    (bounded by EVIDENCE_BUNDLE_MAX_BYTES) that goes when the response is sent."""
    if not may_download_evidence(request.user):
        raise PermissionDenied
    version = get_object_or_404(ModelVersion, pk=pk)
    # Closed (and so deleted) by FileResponse once sent, or below on refusal.
    bundle = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        evidence_bundle_write(version=version, out=bundle, user=request.user)
    except ValidationError as exc:
        bundle.close()
        messages.error(request, f"No evidence bundle: {error_text(exc)}")
        return HttpResponseRedirect(
            reverse("admin:governance_modelversion_change", args=[pk])
        )
    except BaseException:
        bundle.close()
        raise
    bundle.seek(0)
    response = FileResponse(
        bundle,
        as_attachment=True,
        filename=f"evidence-{version.name}.zip",
        content_type="application/zip",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
