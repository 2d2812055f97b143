"""Pure OCI/Docker data models: digests, references, media types, documents, runtime spec.

Nothing here does I/O beyond json and hashlib, so every layer (and the runtime on
each container start) can import it cheaply.
"""
