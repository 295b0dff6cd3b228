"""The package version, on the ground floor: bundles and exports stamp it without importing graft's root."""

__version__ = "0.1.0"
