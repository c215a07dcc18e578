"""Training pieces: the NOVUM contrastive loss, the feature-bank updates, data batching, the loop."""
