"""Sphinx configuration of the gan_trainer documentation.

Build it with ``sphinx-build -W -q -b html docs docs/_build/html`` (the CI
does, warnings as errors). The Markdown pages (tutorial, results) are read by
myst-parser, so they stay readable on GitHub; the API reference comes from
the Google-style docstrings through autodoc and napoleon.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # a source checkout works without pip install

project = 'gan_trainer'
author = 'the gan_trainer authors'
copyright = '2026, the gan_trainer authors'
release = '0.1.0'

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'myst_parser',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build']

# Google style only, as the style guide asks; the types are in the signatures.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'show-inheritance': True}
autodoc_typehints = 'signature'

# Links to sections of the Markdown pages, e.g. tutorial.md#6-conditional-gans.
myst_heading_anchors = 2

html_theme = 'alabaster'
html_title = 'gan_trainer'
