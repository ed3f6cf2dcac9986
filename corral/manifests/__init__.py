"""Mixture manifests (YAML in), build manifests (JSON out), mixture math, inspect and verify."""

from corral.manifests.build_manifest import BuildManifest, Funnel, SourceBuild, load_build
from corral.manifests.mixture import ManifestError, Mixture, load_mixture

__all__ = ["BuildManifest", "Funnel", "SourceBuild", "load_build", "ManifestError", "Mixture", "load_mixture"]
