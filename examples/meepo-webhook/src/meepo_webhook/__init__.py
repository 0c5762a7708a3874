"""An example third-party meepo sink plugin: POST batches of events to a webhook."""
