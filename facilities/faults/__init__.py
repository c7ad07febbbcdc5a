"""Faults logged against places and devices, worked through a timeline to closure."""
