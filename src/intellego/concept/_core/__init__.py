"""Captum-path aliases (``captum.concept._core``): re-exports of the public objects."""
