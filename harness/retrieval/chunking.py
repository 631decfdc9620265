"""Split documents into overlapping windows of embedding-model tokens.

The embedding model's own (fast) tokenizer makes the windows (`return_overflowing_tokens` with
`stride`), and its character offsets cut each chunk's text out of the original document, so a chunk
keeps the document's casing and formatting (an uncased tokenizer's decode would lowercase it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.retrieval.documents import Document


@dataclass(frozen=True)
class Chunk:
    id: str
    """`<source>#<n>`, or `<source>:<locator>#<n>` for a record or page; stable while the file is."""
    source: str
    """The file, relative to the task folder (`docs/json.md`)."""
    text: str
    locator: str
    """Record or page inside the file (`line 3`, `page 2`); empty for a whole file."""
    position: int
    """Index of this chunk among its document's chunks (0-based)."""
    char_start: int
    char_end: int
    tokens: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chunk_documents(documents: list[Document], tokenizer: Any, size: int, overlap: int) -> list[Chunk]:
    """Windows of `size` tokens, consecutive ones sharing `overlap` tokens, in document order."""
    assert 0 <= overlap < size, f"chunk overlap {overlap} must be smaller than the chunk size {size}"
    if not documents:
        return []
    encoded = tokenizer([d.text for d in documents], add_special_tokens=False, truncation=True, max_length=size,
                        stride=overlap, return_overflowing_tokens=True, return_offsets_mapping=True)
    chunks: list[Chunk] = []
    position: dict[int, int] = {}
    for doc_index, offsets in zip(encoded["overflow_to_sample_mapping"], encoded["offset_mapping"]):
        if not offsets:
            continue
        doc = documents[doc_index]
        n = position[doc_index] = position.get(doc_index, -1) + 1
        start, end = offsets[0][0], offsets[-1][1]
        where = f"{doc.source}:{doc.locator.replace(' ', '')}" if doc.locator else doc.source
        chunks.append(Chunk(f"{where}#{n}", doc.source, doc.text[start:end], doc.locator, n, start, end,
                            len(offsets)))
    return chunks
