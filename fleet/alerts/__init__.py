"""Health alerts: rules over device state, quiet windows, grouping and notifications."""
