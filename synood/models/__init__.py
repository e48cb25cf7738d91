"""Model interfaces, suites and their loaders. Heavy libraries load only when a component is used."""

from synood.models.interfaces import (
    ROLES, ComponentInfo, ContextLabeller, EnergyClassifier, GenerationSettings, Generator, ImageTextEncoder,
)
from synood.models.suites import SUITES, ComponentSpec, ModelUnavailableError, Suite, SuiteSpec, resolve_suite

__all__ = ["ROLES", "SUITES", "ComponentInfo", "ComponentSpec", "ContextLabeller", "EnergyClassifier",
           "GenerationSettings", "Generator", "ImageTextEncoder", "ModelUnavailableError", "Suite", "SuiteSpec",
           "resolve_suite"]
