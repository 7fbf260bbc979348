"""Deployment checks (``manage.py check --deploy``) of the platform itself."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_proxy_scheme(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django does not read ``X-Forwarded-Proto`` (any client could send it): the ASGI server
    sets the request's scheme from it, for the proxies in ``FORWARDED_ALLOW_IPS`` only
    (uvicorn's and Daphne's ``--proxy-headers``). Behind a proxy that ends TLS and is not
    named there, every request looks like plain HTTP, and the HTTPS redirect loops."""
    if not settings.PRODUCTION or not settings.SECURE_SSL_REDIRECT:
        return []
    if os.environ.get("FORWARDED_ALLOW_IPS"):
        return []
    return [
        checks.Warning(
            "FORWARDED_ALLOW_IPS is not set: behind a load balancer or proxy that ends TLS, "
            "requests will look like plain HTTP and SECURE_SSL_REDIRECT will redirect for ever.",
            hint="Set FORWARDED_ALLOW_IPS to the proxy's address (the server trusts "
            "X-Forwarded-Proto from it alone), or silence core.W001 where the server itself "
            "ends TLS.",
            id="core.W001",
        )
    ]
