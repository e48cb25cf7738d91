"""SynOOD Explorer: near-boundary OOD synthesis and CLIP-based OOD detection (SynOOD, ICCV 2025)."""

__version__ = "0.1.0"

# The detector's scores in table order with their display names (torch-free, so the CLI can list them). Every score is
# higher = more ID, so the Energy score is -E(x), with E(x) = -logsumexp(logits) the paper's energy (lower = more ID);
# wherever the energy itself is shown it is E(x), with that sign.
SCORE_TITLES = {"neglabel": "NegLabel", "mcm": "MCM", "msp": "MSP", "energy": "Energy -E(x)"}
