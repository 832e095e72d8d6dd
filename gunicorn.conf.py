"""gunicorn settings for `gunicorn wsgi:app`: the same defaults as `python -m simple_gateway`.

Command-line flags still win over these values.
"""

from simple_gateway.server import gunicorn_options, prepare_master
from simple_gateway.settings import load_settings

prepare_master()
globals().update(gunicorn_options(load_settings()))
