"""IonTestCase's own tests: `python -m twisted.trial tests.test_kit.trial` from the repo root."""
