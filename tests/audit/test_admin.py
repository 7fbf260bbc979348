import pytest
from django.contrib import admin
from django.test import RequestFactory

from audit.admin import AuditEventAdmin
from audit.models import AuditEvent
from audit.services import record


@pytest.fixture
def staff_request(django_user_model):
    user = django_user_model.objects.create_superuser(email="root@example.com", password="x" * 12)
    request = RequestFactory().get(
        "/admin/audit/auditevent/", {"q": "r1", "action": "record.viewed"}
    )
    request.user = user
    return request


@pytest.mark.django_db
def test_admin_is_read_only(staff_request):
    model_admin = admin.site._registry[AuditEvent]
    assert isinstance(model_admin, AuditEventAdmin)
    event = record(action="auth.login")
    assert model_admin.has_view_permission(staff_request, event)
    assert not model_admin.has_add_permission(staff_request)
    assert not model_admin.has_change_permission(staff_request, event)
    assert not model_admin.has_delete_permission(staff_request, event)
    assert "delete_selected" not in model_admin.get_actions(staff_request)


@pytest.mark.django_db
def test_admin_filters_by_action_and_searches_the_exact_target_id(staff_request):
    match = record(action="record.viewed", target_type="record", target_id="r1")
    record(action="record.viewed", target_type="record", target_id="r10")
    record(action="doctor.verified", target_type="doctor", target_id="r1")
    changelist = admin.site._registry[AuditEvent].get_changelist_instance(staff_request)
    assert [e.id for e in changelist.get_queryset(staff_request)] == [match.id]
