"""Captum's module paths (``captum.robust._core.*``): aliases of the public objects, no second implementation."""
