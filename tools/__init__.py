"""Developer tools: code generation and checks (not part of the server package)."""
