from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import checks  # noqa: F401 (registers the deployment checks)
        from core.pgtypes import use_c_timestamptz_loader

        use_c_timestamptz_loader()
