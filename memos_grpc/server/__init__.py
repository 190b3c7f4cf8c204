"""The gRPC server: services over the vault, error mapping, health, reflection and shutdown."""
