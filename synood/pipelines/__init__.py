"""Pipelines: the jobs, built on models, data and method: the detector, mining, generation, training, the feature
map's projections."""
