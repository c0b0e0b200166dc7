"""What operators do to billsync's Kafka topics: create them and keep the CDC topics
compacted at every start (``admin.py``), record them into a capture file (``capture.py``),
and replay dead letters (``replay.py``)."""
