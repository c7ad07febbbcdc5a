"""Estate control plane: fleet of devices, rollout, configuration and remote support."""

__version__ = "0.1.0"
