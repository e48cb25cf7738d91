"""SynOOD Explorer: near-boundary OOD synthesis and CLIP-based OOD detection (SynOOD, ICCV 2025)."""

__version__ = "0.1.0"
