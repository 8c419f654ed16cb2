"""The library's exception for bad settings (a leaf module: it imports nothing of purejaxpg)."""


class ConfigError(ValueError):
    """A configuration or hyperparameter is invalid; the message names the field and the fix."""
