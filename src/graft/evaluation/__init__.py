"""Evaluation: metrics of a bundled model on labelled data, and the report folder (`graft eval`)."""
