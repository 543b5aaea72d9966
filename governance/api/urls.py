from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from governance.api import common, public, views, work

app_name = "api"

urlpatterns = [
    # YAML by default; ?format=json for JSON. No Swagger UI or ReDoc: both load
    # their assets from a CDN, and the product must work offline.
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("decisions/", views.DecisionLogView.as_view(), name="decision_log"),
    path(
        "decisions/bulk/",
        views.DecisionBulkLogView.as_view(),
        name="decision_log_bulk",
    ),
    path(
        "decisions/<str:reference>/outcome/",
        views.DecisionOutcomeView.as_view(),
        name="decision_outcome",
    ),
    path("requests/", public.RequestFileView.as_view(), name="request_file"),
    path(
        "requests/<str:token>/",
        public.RequestStatusView.as_view(),
        name="request_status",
    ),
    path(
        "requests/<str:token>/report/",
        public.RequestReportView.as_view(),
        name="request_report",
    ),
    path("contests/", public.ContestFileView.as_view(), name="contest_file"),
    path(
        "contests/<str:token>/",
        public.ContestStatusView.as_view(),
        name="contest_status",
    ),
    path(
        "contests/<str:token>/letter/",
        public.ContestLetterView.as_view(),
        name="contest_letter",
    ),
    path("systems/", views.SystemListView.as_view(), name="system_list"),
    path(
        "systems/<slug:name>/", views.SystemDetailView.as_view(), name="system_detail"
    ),
    path("datasets/", views.DatasetRegisterView.as_view(), name="dataset_register"),
    path(
        "datasets/imports/<int:pk>/",
        views.DatasetImportView.as_view(),
        name="dataset_import",
    ),
    path(
        "datasets/<int:pk>/", views.DatasetDetailView.as_view(), name="dataset_detail"
    ),
    path("models/", views.ModelVersionListView.as_view(), name="model_version_list"),
    path(
        "models/<int:pk>/lineage/",
        views.ModelVersionLineageView.as_view(),
        name="model_version_lineage",
    ),
    path(
        "models/<int:pk>/checks/",
        views.ModelVersionChecksView.as_view(),
        name="model_version_checks",
    ),
    path(
        "models/<int:pk>/dossier/",
        work.DossierStartView.as_view(),
        name="dossier_start",
    ),
    path("jobs/", views.JobStartView.as_view(), name="job_start"),
    path("jobs/<int:pk>/", views.JobDetailView.as_view(), name="job_detail"),
    path("finetunes/", work.FineTuneStartView.as_view(), name="finetune_start"),
    path(
        "finetunes/<int:pk>/",
        work.FineTuneDetailView.as_view(),
        name="finetune_detail",
    ),
    path("reports/<int:pk>/", work.ReportDetailView.as_view(), name="report_detail"),
    path(
        "reports/<int:pk>/download/",
        views.ReportDownloadView.as_view(),
        name="report_download",
    ),
    # Last: the JSON 404 for anything above did not match.
    re_path(r"^", common.not_found, name="not_found"),
]
