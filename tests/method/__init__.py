"""Tests of the method layer (synood/method): formulas, scorers, metrics, losses, the noise loop."""
