from django.contrib import admin
from django.urls import include, path

from accounts import otp
from bookings.views import calendar_feed
from telemed import health, metrics
from telemed.api import api

# Staff must hold a verified TOTP device to use the admin site (see accounts/admin.py).
admin.site.__class__ = otp.StaffOTPAdminSite

urlpatterns = [
    path("api/v1/", api.urls),
    path("_allauth/", include("allauth.headless.urls")),
    path("admin/otp/enrol/", otp.enrol, name="admin_otp_enrol"),
    path("admin/", admin.site.urls),
    path("calendar/<str:token>.ics", calendar_feed, name="calendar_feed"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# Under /api/, the error envelope even where a middleware before ApiGuardMiddleware refuses.
handler400 = "telemed.errors.bad_request"
handler403 = "telemed.errors.permission_denied"
handler404 = "telemed.errors.page_not_found"
handler500 = "telemed.errors.server_error"
