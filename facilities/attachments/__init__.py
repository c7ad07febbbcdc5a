"""Storage for uploaded files, checked by content and named by the platform, not the client."""
