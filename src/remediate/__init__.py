"""remediate: self-hosted auto-remediation behind safety controls an operator can trust.

One pipeline serves every trigger (manual, webhook, schedule, autonomous, chain):
Request -> Gate -> Runner -> Record.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
