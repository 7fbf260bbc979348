from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "records"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from records import checks  # noqa: F401 (registers the deployment checks)
