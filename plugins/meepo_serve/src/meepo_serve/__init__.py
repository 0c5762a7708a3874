"""meepo serve: every pipeline of a config in one supervised process, with a JSON API,
health checks, the Prometheus metrics and a live status page."""
