"""ASGI entry point: HTTP to Django, WebSocket ``/ws/v1/`` to Channels."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemed.settings")

from core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from core.bodylimit import BodyLimitMiddleware  # noqa: E402
from core.collector import start as start_collector  # noqa: E402
from realtime.auth import SocketAuthMiddleware  # noqa: E402
from realtime.consumers import GatewayConsumer  # noqa: E402
from realtime.security import origin_validator  # noqa: E402

websocket_urlpatterns = [path("ws/v1/", GatewayConsumer.as_asgi())]

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": origin_validator(SocketAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far lives as long as the process: keep it out of the garbage
# collector's full passes, whose pauses stop every socket of the process; from here on, the
# survivors of each GC_FREEZE_SECONDS are frozen the same way (core/collector.py).
gc.freeze()
start_collector(settings.GC_FREEZE_SECONDS)

if settings.TASK_WORKER_IN_PROCESS:
    from telemed.worker import start_in_process_worker

    start_in_process_worker()
