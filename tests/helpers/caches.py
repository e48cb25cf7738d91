"""The on-disk model caches the tests look at."""
from synood.config import cache_home


def model_caches() -> set:
    """The cached image-feature and classifier-logit files now on disk."""
    return {p for kind in ("image-features", "classifier-logits") for p in (cache_home() / kind).glob("*/*")}
