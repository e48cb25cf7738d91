"""Notes shown beside a component's output when it is not the paper's model: the app always names what it runs."""
from __future__ import annotations

from synood.models import Suite
from synood.models.interfaces import ROLE_TITLES

# What each offline stand-in family is, in the words shown next to its output.
STANDINS = {
    "standin": "the **offline stand-in for CLIP** (EfficientNet-Lite0's ImageNet softmax carried into "
               "all-MiniLM-L6-v2 sentence space), not CLIP: the scores show how the method works, not CLIP's numbers",
    "efficientnet": "**EfficientNet-Lite0** (real ImageNet weights) in place of the paper's ResNet-50",
    "classical": "the **offline stand-in for SD2 inpainting**: no diffusion; it erases the main object (as "
                 "EfficientNet-Lite0 sees it) and fills the hole from the scene itself",
    "nearest-labels": "the **offline stand-in for LLaVA**: no language model; EfficientNet-Lite0's other labels "
                      "and the WordNet nouns nearest to the image with its main object erased",
}


def standin_note(suite: Suite, *roles: str) -> str:
    """Markdown naming each of `roles` that is a stand-in or has random weights; "" when all are the paper's."""
    parts = []
    for role in roles:
        spec = suite.spec.components[role]
        if spec.random:
            parts.append(f"*Random weights.* {ROLE_TITLES[role]}: {spec.describe()}, untrained: its outputs are "
                         "meaningless, for plumbing and tests only")
        elif spec.family in STANDINS:
            parts.append(f"*Stand-in.* {ROLE_TITLES[role]}: {STANDINS[spec.family]}")
    return "\n\n".join(f"{part}." for part in parts)
