"""Tests of the data layer (synood/data): image loading, WordNet, caches, manifests."""
