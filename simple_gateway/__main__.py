"""`python -m simple_gateway`: the gateway under gunicorn gthread, zero configuration."""

from simple_gateway.server import run

if __name__ == "__main__":
    run()
