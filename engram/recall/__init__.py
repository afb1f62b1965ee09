"""Recall: which memories to put into an agent's request (docs/recall.md).

service.Recaller is the entry point (lifecycle: warm-up and index upkeep; ranking: the
candidate search and the gate model's scores); query picks the words to search for,
hybrid ranks (BM25 + vectors, fused), index/shard hold the vectors, embedder makes them,
gate decides.
"""
