from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Model governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the Celery tasks (services enqueue them by name) and connects
        # the receiver that audits each admin login lockout.
        import workers.tasks  # noqa: F401
        from governance import lockout  # noqa: F401
