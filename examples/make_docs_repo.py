"""Build `examples/documents-repo`, the git repository the example knowledge leaf reads its documents from.

    .venv/bin/python examples/make_docs_repo.py

`graft run` does this by itself when the repository is missing. Fixed author, committer and dates make
the commit SHA always the one written in the leaf's qna.yaml.
"""

from __future__ import annotations

from pathlib import Path

from graftlm.taxonomy.docrepo import build_docs_repo

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    print(build_docs_repo(HERE / "documents", HERE / "documents-repo"))
