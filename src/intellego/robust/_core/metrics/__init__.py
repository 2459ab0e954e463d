"""Captum's module paths (``captum.robust._core.metrics.*``): aliases of the public objects."""
