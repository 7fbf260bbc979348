from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "phone", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active", "language")
    search_fields = ("email", "phone", "first_name", "last_name")
    readonly_fields = ("id", "date_joined", "last_login", "is_staff")
    fieldsets = (
        (None, {"fields": ("id", "email", "phone", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "language", "time_zone")}),
        (
            "Access",
            {
                "fields": (
                    "role",
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "must_change_password",
                )
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),
    )
