"""CLIP's byte-level BPE tokenizer in plain Python, for the ONNX text tower (no torch).

It reads the merges file that CLIP ships (the export copies it into the bundle) and returns the
same token ids as the tokenizer the torch path uses: text cleaned (ftfy when installed, HTML
entities, runs of whitespace) and lower-cased, split into words, each word's UTF-8 bytes merged
pair by pair in the merges' order, framed by start and end tokens and zero-padded.
"""

from __future__ import annotations

import functools
import gzip
import html
from pathlib import Path

import numpy as np

try:
    import regex as re  # Unicode classes (\p{L}, \p{N}) as CLIP splits words
except ImportError:  # pragma: no cover - close enough for Latin scripts
    import re  # type: ignore[no-redef]

START, END = "<start_of_text>", "<end_of_text>"
MERGES = 49152 - 256 - 2
"""Merges CLIP's vocabulary takes from the file: 256 byte tokens, their end-of-word forms, the
merges and two specials make its 49,408 ids."""

_WORD = (
    r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    if re.__name__ == "regex"
    else r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+"""
)


def byte_alphabet() -> dict[int, str]:
    """Each byte as a printable character: printable Latin-1 bytes stand for themselves, the
    others take the code points from 256 upwards, in byte order. The dict's order is the
    vocabulary's: the printable bytes first, then the others."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


def clean(text: str) -> str:
    """ftfy's fixes (when installed), HTML entities undone, whitespace collapsed, lower case."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Text -> CLIP token ids, ``(B, context_length)`` int64.

    Args:
        merges_file: CLIP's ``bpe_simple_vocab_16e6.txt.gz`` (gzip, one merge per line after a
            header line).
        context_length: ids per text; longer texts are cut, keeping the end token last.
    """

    def __init__(self, merges_file: str | Path, context_length: int = 77) -> None:
        lines = gzip.open(merges_file, "rt", encoding="utf-8").read().split("\n")[1 : MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        self.alphabet = byte_alphabet()
        symbols = list(self.alphabet.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START, END]
        self.ids = {s: i for i, s in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.start, self.end = self.ids[START], self.ids[END]
        self.context_length = int(context_length)
        self.pattern = re.compile(_WORD, re.IGNORECASE)
        self._bpe = functools.lru_cache(maxsize=10_000)(self._merge_word)

    def _merge_word(self, word: str) -> tuple[str, ...]:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.rank.get((a, b), MERGES), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best = min(pairs)[0]
            if best == MERGES:
                break
            first, second = next((parts[i], parts[i + 1]) for r, i in pairs if r == best)
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s words, without the start and end tokens."""
        out: list[int] = []
        for word in self.pattern.findall(clean(text)):
            symbols = "".join(self.alphabet[b] for b in word.encode("utf-8"))
            out.extend(self.ids[p] for p in self._bpe(symbols))
        return out

    def __call__(self, texts: list[str]) -> np.ndarray:
        batch = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start] + self.encode(text) + [self.end]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.end
            batch[row, : len(ids)] = ids
        return batch
