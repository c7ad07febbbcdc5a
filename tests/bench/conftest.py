"""Benchmarks run against real PostgreSQL, the local Mosquitto and a real VictoriaMetrics."""
