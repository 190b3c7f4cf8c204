"""The conformance suite across languages: a package, so that its conftest and test modules do not take the names
of the other test folders' (``conftest``, ``test_vectors``) in a whole-suite run."""
