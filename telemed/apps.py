from django.apps import AppConfig


class TelemedConfig(AppConfig):
    """The composition root, installed as an app for its management commands (``seed_demo``)."""

    name = "telemed"
    verbose_name = "Telemed"
