"""The pure rule core: no I/O, no Kafka, Faust, SQLite or HTTP; clocks are passed in."""
