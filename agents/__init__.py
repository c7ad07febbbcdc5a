"""The device agent and the MQTT protocol (v1) it speaks; no control-plane imports here."""

AGENT_VERSION = "1.0.0"
