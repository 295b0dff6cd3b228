"""`python -m graft ...` is the same as `graft ...` (and what torchrun launches)."""

from graft.cli.app import main

main()
