"""The Memory Interchange Protocol: signed bundles, their codec, trust and exchange."""
