"""Near-duplicate detection: MinHash LSH over word 1-2-gram sets, confirmed by exact Jaccard similarity.

LSH finds candidate matches in sub-linear time; the exact Jaccard check on the shingle sets removes its
false positives, so a verdict never depends on hash luck in that direction.
"""

from __future__ import annotations

import re

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128


def shingles(text: str) -> frozenset[str]:
    """Lower-cased word unigrams and bigrams of `text` (punctuation ignored)."""
    words = re.findall(r"\w+", text.lower())
    grams = set(words)
    grams.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return frozenset(grams)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateIndex:
    """Texts added so far; `match(text)` names the first one at or above `threshold` similarity."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        # LSH with a slightly lower threshold, so that borderline pairs reach the exact check.
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=NUM_PERM)
        self._sets: dict[str, frozenset[str]] = {}
        self._exact: dict[frozenset[str], str] = {}

    def __len__(self) -> int:
        return len(self._sets)

    @staticmethod
    def _minhash(grams: frozenset[str]) -> MinHash:
        m = MinHash(num_perm=NUM_PERM)
        m.update_batch([g.encode("utf-8") for g in sorted(grams)])
        return m

    def match(self, text: str) -> tuple[str, float] | None:
        """(key, similarity) of the most similar indexed text at or above the threshold, else None."""
        grams = shingles(text)
        if grams in self._exact:
            return self._exact[grams], 1.0
        if not grams:
            return None
        best: tuple[str, float] | None = None
        for key in self._lsh.query(self._minhash(grams)):
            sim = jaccard(grams, self._sets[key])
            if sim >= self.threshold and (best is None or sim > best[1]):
                best = (key, sim)
        return best

    def add(self, key: str, text: str) -> None:
        if key in self._sets:
            return
        grams = shingles(text)
        self._sets[key] = grams
        self._exact.setdefault(grams, key)
        if grams:
            self._lsh.insert(key, self._minhash(grams))
