from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Model governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks (services enqueue them by name) and connects
        # the receiver that audits each admin login lockout.
        import workers.tasks  # noqa: F401
        from governance import lockout  # noqa: F401


class GovernanceAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the work queue as its front page (settings names it
    in place of django.contrib.admin)."""

    default = False  # not this app's own config: GovernanceConfig is
    default_site = "governance.admin_site.GovernanceAdminSite"
