"""Running the flow as a service: ``runner.py`` wires the Kafka source, the decoder, the
ERP sink and the recovery store into :func:`dataflows.flow.build_flow` and runs it;
``watchdog.py`` exits 75 when the flow stops closing epochs; ``http.py`` serves ``/metrics``
and ``/health``."""
