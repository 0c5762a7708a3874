"""A plugin that fails at import, to show it is reported by name and the CLI survives."""

raise ImportError("meepo_missing_dependency is not installed")
