"""Tests of the `synood` command (synood/cli), through its real entry point."""
