"""The `graft` command line; entry point `graft.cli.app:main`."""
