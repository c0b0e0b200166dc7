"""The typed CDC edge: Debezium envelopes in, typed ``Change`` objects out."""
