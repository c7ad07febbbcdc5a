"""Background tasks run by `estate worker` and scheduled by `estate beat` (Celery)."""
