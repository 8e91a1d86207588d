"""Configuration: frozen pydantic models, built-in defaults, a loader with line-accurate errors."""

from remediate.config.models import Settings

__all__ = ["Settings"]
