"""Simulated devices: enrolled like real ones, reporting over MQTT, with injectable faults."""
