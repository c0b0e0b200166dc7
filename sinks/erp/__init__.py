"""The ERP interface tables (SPEC 3) and the exactly-once writer that maintains them."""
