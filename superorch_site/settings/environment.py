"""The process environment, as the settings read it.

base.py reads every variable once, through `env`; integration.py reads its
INTEGRATION_* variables through `integration_env`. Nothing else in the project
reads settings from os.environ (docs/configuration.md lists every variable).

The test settings call `hermetic()` before importing base, so base then reads an
empty environment and the tests run on the embedded defaults whatever the shell
exports (a CELERY_BROKER_URL left in it would otherwise stop Celery being eager).
"""

from __future__ import annotations

import os
import sys

import environ

env = environ.Env()

# Only INTEGRATION_* variables: the integration settings take nothing else.
integration_env = environ.Env()
integration_env.ENVIRON = {k: v for k, v in os.environ.items() if k.startswith("INTEGRATION_")}


# Variables that libraries read from os.environ themselves: the OpenAI clients (a key or
# server the tests must never reach) and prometheus-client (its multiprocess mode).
LIBRARY_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PROMETHEUS_MULTIPROC_DIR")


def hermetic() -> None:
    """From now on base.py reads an empty environment, and the libraries do not see the
    variables they would read themselves. Call it before importing base."""
    if "superorch_site.settings.base" in sys.modules and env.ENVIRON:
        raise RuntimeError("hermetic() must run before superorch_site.settings.base is imported")
    env.ENVIRON = {}
    for name in LIBRARY_VARIABLES:
        os.environ.pop(name, None)
