"""Types that ship with meepo-core, registered through the same hooks as any plugin."""
