"""The billing dataflow: typed CDC edge, pure billing core, Bytewax wiring."""
