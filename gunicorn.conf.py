"""gunicorn settings for `gunicorn wsgi:app`: the same defaults as `python -m simple_gateway`.

Command-line flags still win over these values. The configuration is checked here, in
the master, so a bad setting stops gunicorn with one line before any worker forks.
"""

from simple_gateway.cli import load_checked
from simple_gateway.server import gunicorn_options, prepare_master

_settings = load_checked()
prepare_master()
globals().update(gunicorn_options(_settings))
