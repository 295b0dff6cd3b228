"""Backbones with fresh heads: `registry.create_model(name, num_classes)` and `registry.list_models(pattern)`."""
