"""Data and caches: image loading with limits, packaged photos, WordNet, selections, manifests, the feature and
text caches keyed by content, atomic storage."""
