"""simple-gateway: a transparent, recording proxy between applications and AI providers."""

__version__ = "0.1.0"
