"""Generative models a vault's activation and parametric memories belong to.

Fingerprints that name a model exactly, and the safetensors codec for KV caches.
"""
