"""SynOOD Explorer: near-boundary OOD synthesis and CLIP-based OOD detection (SynOOD, ICCV 2025)."""

__version__ = "0.1.0"

# The detector's scores in table order with their display names (torch-free, so the CLI can list them).
SCORE_TITLES = {"neglabel": "NegLabel", "mcm": "MCM", "msp": "MSP", "energy": "Energy"}
