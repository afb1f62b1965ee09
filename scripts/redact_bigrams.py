"""Print the letter bigrams that engram.redact.values uses to tell words from random strings.

    .venv/bin/python scripts/redact_bigrams.py

Counts the bigrams inside the words of CPython's standard library (identifiers, docstrings
and comments: English as programmers write it) and keeps the most frequent ones until they
cover 97 % of all occurrences: 263 of the 676 possible. Inside a random string a bigram is in
that set 39 % of the time; inside a word or an identifier, almost always.
"""

from __future__ import annotations

import collections
import itertools
import pathlib
import re
import sysconfig


def main() -> None:
    counts: collections.Counter[str] = collections.Counter()
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for path in stdlib.rglob("*.py"):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", path.read_text(errors="ignore")):
            word = word.lower()
            counts.update(a + b for a, b in itertools.pairwise(word))
    total = sum(counts.values())
    kept, covered = [], 0
    for bigram, n in counts.most_common():
        kept.append(bigram)
        covered += n
        if covered / total > 0.97:
            break
    print(" ".join(sorted(kept)))


if __name__ == "__main__":
    main()
