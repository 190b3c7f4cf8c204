"""Generative models a vault's activation and parametric memories belong to.

Fingerprints that name a model exactly, the safetensors codec for KV caches, and its header format (read
without torch, so the vault can describe a cache).
"""
