"""Captum's module paths (``captum.influence._utils.*``): re-exports only."""
