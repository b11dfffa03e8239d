"""The kit's trial cases run under `python -m twisted.trial` (see test_suites.py), never
under pytest: trial TestCases collected next to pytest-twisted tests break both."""

collect_ignore = ["trial"]
