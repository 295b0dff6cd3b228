"""The run folder `graft train` writes: its layout, owned by one module (folder.py)."""
