"""The read side: what finance, analysts and operators read back from the ERP and Kafka.

``queries/`` (SQL over the ERP tables: exception queue, figures, explain, Parquet export),
``audit/`` (``billsync recon audit``: the batch target from PSA/CRM against the ERP),
``dashboard/`` (the HTML page and JSON summary), ``topics.py`` (billsync's Avro topics read
as an analyst would) and ``metrics.py`` (the ERP- and broker-side figures of ``/metrics``).
Nothing here imports the writer, the sink or the running flow (an import-linter contract).
"""
