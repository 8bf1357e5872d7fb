"""The verdict and what reads it: the verdict document and its schema (``model``), the binding
to what was judged (``provenance``), the lock on the verdict path, shard merging,
``modelgate check`` and the terminal, Markdown and HTML reports (``reports``).
Never imports pytest.
"""
