"""Repository tools (not installed with the package); run them from the repository root, e.g.
``python -m tools.apidoc --out docs/api.md``."""
