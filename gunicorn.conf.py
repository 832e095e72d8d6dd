"""gunicorn settings for `gunicorn wsgi:app`: the same defaults as `python -m simple_gateway`.

Command-line flags still win over these values.
"""

import sys

from simple_gateway.preflight import preflight
from simple_gateway.server import gunicorn_options, prepare_master
from simple_gateway.settings import SettingsError, load_settings

try:
    _settings = load_settings()
    preflight(_settings)
except SettingsError as exc:
    sys.exit(f"simple-gateway: configuration error: {exc}")
prepare_master()
globals().update(gunicorn_options(_settings))
