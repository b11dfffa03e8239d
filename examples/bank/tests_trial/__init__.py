"""The bank example's trial suite: `python -m twisted.trial tests_trial` from examples/bank."""
