"""Knowledge base: load documents, chunk, embed, index (FAISS + BM25) and search them.

The package imports nothing of the rest of the project. Heavy modules (faiss, torch,
sentence-transformers) are imported only where they are used, so importing `knowledge` is cheap.
"""

from knowledge.documents import Chunk, Document, Hit, KnowledgeError

__all__ = ["Chunk", "Document", "Hit", "KnowledgeError"]
