from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from allauth.account import signals as account_signals
        from allauth.socialaccount import signals as social_signals

        from accounts import adapter

        # allauth tells of a wrong login code, and of changes of the addresses and Google
        # accounts that sign an account in, only by its signals: each is audited.
        for signal, receiver in (
            (account_signals.login_code_rejected, adapter.login_code_rejected),
            (account_signals.email_added, adapter.email_added),
            (account_signals.email_confirmed, adapter.email_confirmed),
            (account_signals.email_changed, adapter.email_changed),
            (account_signals.email_removed, adapter.email_removed),
            (social_signals.social_account_added, adapter.social_account_added),
            (social_signals.social_account_removed, adapter.social_account_removed),
        ):
            signal.connect(receiver, dispatch_uid=f"accounts-{receiver.__name__}")
