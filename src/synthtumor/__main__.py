"""``python -m synthtumor ...``: the ``synthtumor`` command."""

from synthtumor.cli import main

main()
