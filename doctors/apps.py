from django.apps import AppConfig


class DoctorsConfig(AppConfig):
    name = "doctors"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from doctors import index

        index.connect()
