"""Build entry for ion; the metadata lives in pyproject.toml.

The twistd dropin ``twisted/plugins/cc_plugin.py`` ships as a namespace portion
(``twisted.plugins`` has no ``__init__.py`` here), so installing ion never
overwrites Twisted's own package files.
"""

from setuptools import setup

setup()
