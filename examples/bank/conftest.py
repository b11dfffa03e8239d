"""pytest must not collect the trial suite: run tests_trial with `python -m twisted.trial`."""

collect_ignore = ["tests_trial"]
