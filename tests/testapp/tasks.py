from django_tasks import task

from tests.testapp.models import TaskRun


@task()
def record_run(marker: str) -> str:
    TaskRun.objects.create(marker=marker)
    return marker
