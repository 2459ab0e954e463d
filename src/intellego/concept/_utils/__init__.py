"""Captum-path aliases (``captum.concept._utils``): re-exports of the public objects."""
