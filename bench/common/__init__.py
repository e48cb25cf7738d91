"""Pieces both the benchmarks and the tests use. They live here because bench/ imports no test code (tests may
import bench); pieces only tests use go in tests/helpers/."""
