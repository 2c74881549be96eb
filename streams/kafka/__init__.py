"""The Kafka runtime: Faust workers over the pure core, keyed by user."""
