"""Sending messages to people: email over SMTP and JSON webhooks (e.g. a Teams channel)."""
