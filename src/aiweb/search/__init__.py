"""Search collections: documents embedded with a registered sentence-embedding model,
searched by vector (exact, HNSW or pgvector), keyword (BM25) or both (reciprocal rank
fusion), with metadata filters."""

__all__ = [
    "embedded",
    "entities",
    "filters",
    "index",
    "indexing",
    "jobs",
    "keyword",
    "orm",
    "pgvector",
    "routes",
    "schemas",
    "service",
    "store",
    "task",
]
