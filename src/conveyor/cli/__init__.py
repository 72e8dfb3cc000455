"""The ``conveyor`` command line: one module per verb, each thin over the library."""
