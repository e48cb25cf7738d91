"""Comparing metric reports (nested JSON) with a float tolerance."""


def flat(value, prefix: str = "") -> dict:
    """Every leaf of nested dicts and lists by its path ("sets/textures/mos/auroc"), for pytest.approx."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}{key}/").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): value}
