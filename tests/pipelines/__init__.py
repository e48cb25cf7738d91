"""Tests of the pipelines (synood/pipelines): mining, evaluation, generation, the feature map."""
