"""Finding places in the estate fast: search, browse with open faults, QR sheets."""
