"""``python -m synthtumor.train ...``: the train command alone (what torchrun launches)."""

from synthtumor.train.cli import main

main()
