from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from allauth.account.signals import login_code_rejected

        from accounts.adapter import login_code_rejected as audit_rejected_code

        # allauth tells of a wrong login code only by this signal.
        login_code_rejected.connect(audit_rejected_code, dispatch_uid="accounts-code-rejected")
