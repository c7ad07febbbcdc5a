"""Grafana dashboards shipped with the platform: their model, checks and installation."""
