"""Pure domain logic: no I/O, no Celery, no database."""
