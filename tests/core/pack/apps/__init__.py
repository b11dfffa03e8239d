"""App modules the app manager tests start (importable by twistd subprocesses too)."""
