"""Tests of the models layer (synood/models): suites, loaders of each family, the offline stand-ins."""
