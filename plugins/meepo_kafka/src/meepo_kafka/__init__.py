"""meepo-kafka."""
