"""Models that exist only in the test database, to exercise platform helpers that no domain
model uses yet (field encryption, tasks)."""

from django.db import models

from core.fields import EncryptedTextField


class Specimen(models.Model):
    note = EncryptedTextField(null=True, blank=True)
    label = models.CharField(max_length=50, default="")

    class Meta:
        app_label = "testapp"


class TaskRun(models.Model):
    marker = models.CharField(max_length=50)

    class Meta:
        app_label = "testapp"
