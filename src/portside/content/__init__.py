"""Content-addressed blob store (see store.py)."""

from portside.content.store import BlobProblem, ContentStore, GCReport, Lease, Writer, children_of

__all__ = ["BlobProblem", "ContentStore", "GCReport", "Lease", "Writer", "children_of"]
