"""Use cases over the ledger, Xero and SFTP. No Celery here: tasks in workers/ are thin shells."""
