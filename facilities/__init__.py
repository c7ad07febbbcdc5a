"""Facilities: estate faults, their targets, timeline, SLA clocks and attachments."""
