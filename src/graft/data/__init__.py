"""From a folder or CSV to DataLoaders.

`discover` (stdlib only, fast) finds samples, classes and the split; `images` decodes and transforms.
"""
