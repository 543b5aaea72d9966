from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from governance import admin as governance_admin
from governance import views

urlpatterns = [
    path("", RedirectView.as_view(url="/explain/", permanent=False)),
    path("explain/", views.request_new, name="request_new"),
    path("explain/status/<str:token>/", views.request_status, name="request_status"),
    path(
        "explain/status/<str:token>/report.pdf",
        views.request_report,
        name="request_report",
    ),
    path(
        "explain/status/<str:token>/contest/",
        views.contest_new,
        name="contest_new",
    ),
    path(
        "explain/status/<str:token>/contest-letter.pdf",
        views.request_contest_letter,
        name="request_contest_letter",
    ),
    path("explain/contest/<str:token>/", views.contest_status, name="contest_status"),
    path(
        "explain/contest/<str:token>/letter.pdf",
        views.contest_status_letter,
        name="contest_status_letter",
    ),
    path(
        "admin/policy/",
        admin.site.admin_view(governance_admin.policy_view),
        name="governance_policy",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("governance.api.urls")),
]

# An upload over the cap is refused with its reason (governance.http.UploadCapHandler).
handler400 = "governance.views.bad_request"
