"""Captum's module paths (``captum.influence._core.*``): re-exports only, so imports of those paths port."""
