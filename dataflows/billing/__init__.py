"""The pure billing core: SPEC section 2 as functions over immutable values.

Nothing in this package imports Kafka, Bytewax or a database driver.
"""
