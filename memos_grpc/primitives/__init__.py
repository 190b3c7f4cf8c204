"""Primitives every signed format shares: Ed25519 keys (``keys``), the strict grammar's base64 and patterns
(``grammar``), canonical JSON and the one RFC 3339 profile (``canonical``), and the bounds of the protocol's numbers
(``bounds``). A library under the store and the components: the interchange bundles, the transparency-log formats,
governance and the marketplace all build on it, and it imports none of them."""
