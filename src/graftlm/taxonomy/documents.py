"""A knowledge leaf's documents: fetch its git repository at the pinned commit, glob, extract text.

`document.repo` is a git URL (`https://...`, `ssh://...`, `git@host:path`) or a local git repository
(absolute, `~/...`, or relative to the folder of the `qna.yaml`). Other transports (`ext::`, `file::`,
`fd::`...) and anything that looks like a command-line option are refused. The repository is cloned
once per (repo, commit) into `graft_home()/repos/<hash>` and reused afterwards; a clone is built in
a temporary folder and moved into place when complete, so a crash never leaves a half clone that
later runs trust. Patterns and symlinks that lead outside the repository are refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graftlm.errors import DocumentError, Location
from graftlm.taxonomy.model import Leaf

DocFormat = Literal["markdown", "pdf", "text"]
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Documents larger than this are refused."""
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx"}
TEXT_SUFFIXES = {".txt", ".text", ".rst"}
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)(?!-)[^\s]+$")
_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n(---|\.\.\.)\s*(\n|\Z)", re.DOTALL)
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,64}$")


@dataclass(frozen=True)
class Document:
    """The text of one document of a knowledge leaf."""

    path: str
    """Path inside the repository, with `/` separators."""
    text: str
    sha256: str
    """SHA-256 of the file's bytes."""
    format: DocFormat
    repo: str = ""
    commit: str = ""


def _err(leaf: Leaf, message: str, field: str, hint: str | None = None) -> DocumentError:
    return DocumentError(message, hint=hint, location=Location(str(leaf.path), None, None, field))


def resolve_repo(leaf: Leaf) -> tuple[str, bool]:
    """The repository to fetch from (local paths made absolute) and whether it is a local path. Raises
    DocumentError for anything that is not an https/ssh URL, an scp-like `git@host:path`, or a path."""
    assert leaf.document is not None
    spec = leaf.document.repo.strip()
    hint = ("use an https:// or ssh:// URL, git@host:path, or a path to a local git repository "
            "(absolute or relative to the qna.yaml's folder)")
    if not spec or spec.startswith("-") or any(ord(c) < 32 for c in spec):
        raise _err(leaf, f"{spec!r} is not a repository", "document.repo", hint)
    lower = spec.lower()
    if lower.startswith(("https://", "ssh://")):
        host = spec.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        if not host or host.startswith("-"):
            raise _err(leaf, f"{spec!r} has no valid host", "document.repo", hint)
        return spec, False
    if _SCP_LIKE.match(spec) and "::" not in spec:
        return spec, False
    if "://" in spec or "::" in spec or ":" in spec.split("/")[0]:
        raise _err(leaf, f"{spec!r} uses a transport graftlm does not accept", "document.repo", hint)
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = Path(leaf.path).parent / path
    return str(path.resolve()), True


def _git(args: list[str], cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true",
           "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"}
    safe = ["-c", "protocol.allow=never", "-c", "protocol.https.allow=always", "-c", "protocol.ssh.allow=always",
            "-c", "protocol.file.allow=always", "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false"]
    return subprocess.run(["git", *safe, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def cache_root() -> Path:
    from graftlm.models import graft_home

    return graft_home() / "repos"


def fetch_repo(leaf: Leaf, cache_dir: Path | None = None, *, fetch: bool = True) -> Path:
    """The leaf's repository checked out at `document.commit`, cloned into the cache on first use (with
    `fetch=False`, a DocumentError instead: nothing is written)."""
    if leaf.document is None:
        raise _err(leaf, "this leaf has no document", "document")
    commit = leaf.document.commit.strip()
    if not _COMMIT.match(commit):
        raise _err(leaf, f"{commit!r} is not a commit hash", "document.commit",
                   "write the full 40-character SHA of the commit (git rev-parse HEAD in that repository)")
    source, _local = resolve_repo(leaf)
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    key = hashlib.sha256(f"{source}\0{commit.lower()}".encode()).hexdigest()[:24]
    dest = cache / key
    if (dest / ".git").is_dir():
        return dest  # a finished clone: moved into place only when complete
    if not fetch:
        raise _err(leaf, f"the repository {source} is not fetched yet", "document.repo")
    if _local and not Path(source).is_dir():
        raise _err(leaf, f"the local repository {source} does not exist", "document.repo",
                   "write a path to a git repository, absolute or relative to the qna.yaml's folder")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{key}.tmp-"))
    try:
        _clone(leaf, source, commit, tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished the same clone first
            if not (dest / ".git").is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _clone(leaf: Leaf, source: str, commit: str, into: Path) -> None:
    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return _git(args, cwd=into)
        except subprocess.TimeoutExpired:
            raise _err(leaf, f"git {args[0]} from {source} took too long", "document.repo") from None
        except FileNotFoundError:
            raise _err(leaf, "git is not installed", "document.repo", "install git") from None

    for args in (["init", "-q"], ["config", "remote.origin.url", source]):
        p = run(args)
        if p.returncode:
            raise _err(leaf, f"cannot prepare a clone of {source}: {p.stderr.strip()}", "document.repo")
    # A full SHA can be fetched alone; a short one (or a server that refuses) needs the whole history.
    shallow = run(["fetch", "-q", "--depth", "1", "origin", commit]) if len(commit) == 40 else None
    if shallow is None or shallow.returncode:
        p = run(["fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"])
        if p.returncode:
            raise _err(leaf, f"cannot fetch {source}: {p.stderr.strip()[-400:]}", "document.repo",
                       "check the URL or path, and that you can reach it (for a local path: is it a git repository?)")
        target = commit
    else:
        target = "FETCH_HEAD"
    p = run(["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", target, "--"])
    if p.returncode:
        raise _err(leaf, f"commit {commit} is not in {source}: {p.stderr.strip()[-300:]}", "document.commit",
                   "write a commit that exists in that repository (git log there)")
    head = run(["rev-parse", "HEAD"]).stdout.strip()
    if not head.lower().startswith(commit.lower()):
        raise _err(leaf, f"commit {commit} is not in {source} (got {head})", "document.commit")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def match_patterns(leaf: Leaf, repo: Path) -> list[tuple[int, Path]]:
    """(pattern index, file) for every file the patterns match, in pattern order, without repeats."""
    assert leaf.document is not None
    root = repo.resolve()
    out: list[tuple[int, Path]] = []
    seen: set[Path] = set()
    for i, pattern in enumerate(leaf.document.patterns):
        field = f"document.patterns[{i}]"
        pat = pattern.strip()
        parts = Path(pat).parts
        if not pat or pat.startswith(("/", "~")) or Path(pat).is_absolute() or ".." in parts or "\\" in pat:
            raise _err(leaf, f"{pattern!r} points outside the repository", field,
                       "write a pattern relative to the repository root, e.g. `docs/*.md`")
        if ".git" in parts:
            raise _err(leaf, f"{pattern!r} points into .git", field)
        matches = []
        for m in sorted(root.glob(pat)):
            if ".git" in m.relative_to(root).parts or m.is_dir():
                continue
            real = m.resolve()
            if not _inside(real, root) or (m.is_symlink() and ".git" in real.relative_to(root).parts):
                raise _err(leaf, f"{m.relative_to(root)} is a symlink that leads outside the repository",
                           field, "documents must be files inside the repository")
            if not real.is_file():
                continue
            matches.append(m)
        if not matches:
            raise _err(leaf, f"{pattern!r} matches no file in {leaf.document.repo} at commit "
                             f"{leaf.document.commit[:12]}", field,
                       "check the pattern against the files of that commit (git ls-tree -r --name-only COMMIT)")
        for m in matches:
            if m not in seen:
                seen.add(m)
                out.append((i, m))
    return out


def extract_text(path: Path, fmt: DocFormat) -> str:
    """Text of one document: Markdown without front matter, PDF pages joined by blank lines."""
    if fmt == "pdf":
        try:
            from pypdf import PdfReader
            from pypdf.errors import PyPdfError
        except ImportError:
            raise DocumentError("reading PDF documents needs pypdf",
                                hint="pip install 'graftlm[documents]'") from None
        try:
            reader = PdfReader(str(path))
            if reader.is_encrypted:
                raise DocumentError(f"{path.name} is an encrypted PDF", hint="use an unencrypted copy")
            pages = [(page.extract_text() or "").strip() for page in reader.pages]
        except DocumentError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, OSError) as e:
            raise DocumentError(f"cannot read the PDF {path.name}: {e}", hint="check that it is a valid PDF") from None
        return "\n\n".join(p for p in pages if p)
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path.name} is a binary file, not {fmt} text")
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if fmt == "markdown":
        text = _FRONT_MATTER.sub("", text, count=1)
    return text.strip() + "\n" if text.strip() else ""


def doc_format(path: Path) -> DocFormat | None:
    suffix = path.suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix == ".pdf":
        return "pdf"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return None


def load_leaf_documents(leaf: Leaf, cache_dir: Path | None = None, *, fetch: bool = True) -> list[Document]:
    """The documents of a knowledge leaf, in pattern order. Raises DocumentError naming the leaf file and
    the field (`document.repo`, `document.commit`, `document.patterns[i]`) when something is wrong."""
    if leaf.document is None:
        raise _err(leaf, "this leaf has no document (only knowledge leaves have documents)", "document")
    repo = fetch_repo(leaf, cache_dir, fetch=fetch)
    docs = []
    for i, f in match_patterns(leaf, repo):
        field = f"document.patterns[{i}]"
        rel = f.relative_to(repo).as_posix()
        fmt = doc_format(f)
        if fmt is None:
            raise _err(leaf, f"{rel} matches, but it is neither Markdown nor PDF nor text", field,
                       "narrow the pattern to .md, .pdf or .txt files")
        size = f.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise _err(leaf, f"{rel} is {size / 1e6:.0f} MB; the limit is {MAX_DOCUMENT_BYTES // 2**20} MiB", field)
        try:
            text = extract_text(f, fmt)
        except DocumentError as e:
            raise _err(leaf, f"{rel}: {e.message}", field, e.hint) from None
        if not text.strip():
            raise _err(leaf, f"{rel} has no text (a scanned PDF without a text layer?)", field,
                       "use a document with extractable text")
        h = hashlib.sha256(f.read_bytes()).hexdigest()
        docs.append(Document(path=rel, text=text, sha256=h, format=fmt, repo=leaf.document.repo, commit=leaf.document.commit))
    return docs
