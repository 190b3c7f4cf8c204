"""The protocol's test vectors, by kind: envelopes (steps 2-3), bundles (all steps), trust root updates.

``tools.gen_vectors`` writes them to testdata/vectors/; testdata/vectors/README.md describes the format.
"""
