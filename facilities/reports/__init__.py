"""Fault reports: what is open, how fast faults clear, SLA compliance, what keeps coming back."""
