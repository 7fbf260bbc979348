"""The production image runs in production mode by default: a deployment that forgets
``DJANGO_ENV`` is refused at start, instead of serving debug pages."""

from __future__ import annotations

import shlex

from tests.platform.test_compose import dockerfile_instructions
from tests.platform.test_settings import run


def image_env() -> dict[str, str]:
    """What the Dockerfile's ``ENV`` instructions leave set, in order."""
    env: dict[str, str] = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            env.update(part.partition("=")[::2] for part in shlex.split(args))
    return env


def test_the_image_defaults_to_production_after_its_build_steps():
    steps = dockerfile_instructions()
    assert image_env().get("DJANGO_ENV") == "production"
    # The build steps import the settings in development mode (no production secrets there).
    production = next(
        i for i, (w, a) in enumerate(steps) if w == "ENV" and "DJANGO_ENV=production" in a
    )
    assert not [a for w, a in steps[production:] if w == "RUN" and "manage.py" in a]


def test_the_image_environment_alone_is_refused_not_served_in_debug():
    env = {
        "DJANGO_ENV": image_env().get("DJANGO_ENV"),
        "DJANGO_SETTINGS_MODULE": "telemed.settings",
    }
    r = run("import django; django.setup()", env)
    assert r.returncode != 0
    assert "must be set when DJANGO_ENV=production" in r.stderr
