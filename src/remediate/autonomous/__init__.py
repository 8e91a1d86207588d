"""Proactive remediation: resource samples, forecasts and their accuracy, the
observe-orient-decide-act loop, and schedules (systemd timers or embedded).

See docs/forecasting.md. Modules are imported by the commands that need them.
"""
