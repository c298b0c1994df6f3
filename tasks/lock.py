"""Copier task: resolve the service's dependencies into uv.lock.

    python lock.py copy      # a `_tasks` entry: after `copier copy` (and recopy)
    python lock.py update    # a `_migrations` entry: after `copier update` has merged

On copy it writes a lock of the newest versions the floors in pyproject.toml allow.
On update it runs after Copier has merged the user's edits into pyproject.toml, and
re-resolves only what the merged file requires, keeping every pin that still satisfies
it (`uv lock` never upgrades a locked package unless asked). uv.lock is never merged
(copier.yml lists it in `_skip_if_exists`): a lock is regenerated, not three-way-merged.

When pyproject.toml holds conflict markers from the update's merge, or the package index
cannot be reached, the copy or update stands and this says what to run (`uv lock`) once
the conflicts are resolved or the network is back. When `uv lock` fails otherwise (a name
that clashes with a dependency, an unsatisfiable constraint), this prints uv's own error
and exits 1, so copier fails: on update the user's previous uv.lock is put back byte for
byte, never lost. A copy on a machine without uv, or without a Python matching
`requires-python` (uv resolves with one), is not failed: it stands without a lock and
says to run `uv lock` where they are. `make install`, the CI workflow and the Dockerfile
install with `--locked`, so every install is the locked set.

Runs with the Python that runs Copier: standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LOCK = Path("uv.lock")
# How uv says that no interpreter satisfies `requires-python`: none here and none may be
# downloaded, or the download of one (from python-build-standalone) failed.
NO_INTERPRETER = ("No interpreter found", "python-build-standalone")
# How uv says that the package index could not be reached (no network, a proxy, DNS).
NO_NETWORK = (
    "Failed to fetch",
    "error sending request",
    "tcp connect error",
    "dns error",
    "Could not connect",
    "operation timed out",
)
# git's conflict markers: a line that starts with one of them (7 characters, then a space
# or the end of the line) is an unresolved conflict of the update's three-way merge.
CONFLICT_MARKERS = ("<<<<<<<", "=======", ">>>>>>>", "|||||||")
PYPROJECT = Path("pyproject.toml")


def has_conflict_markers(text: str) -> bool:
    """True when `text` holds a line that is one of git's conflict markers."""
    return any(
        line.startswith(CONFLICT_MARKERS) and line[7:8] in ("", " ") for line in text.splitlines()
    )


def committed_lock() -> bytes | None:
    """uv.lock as the project's last commit has it (`copier update` needs a clean git
    tree), or None. An update from a release that locked inside Copier's scratch copies
    can remove uv.lock from the project before this runs."""
    git = shutil.which("git")
    if git is None:
        return None
    shown = subprocess.run([git, "show", f"HEAD:./{LOCK}"], capture_output=True, check=False)
    return shown.stdout if shown.returncode == 0 else None


def fail(uv_error: str, operation: str, kept: bool) -> int:
    print(uv_error, end="" if uv_error.endswith("\n") else "\n", file=sys.stderr)
    if "depends on itself" in uv_error:
        # The slug validator refuses the direct dependencies; this is a transitive one.
        print(
            "project_slug names a package the service depends on: choose another "
            "(for example, add -service), with `--data project_slug=...`.",
            file=sys.stderr,
        )
    if operation == "update":
        outcome = (
            "Your previous uv.lock is kept unchanged" if kept else "There was no uv.lock to keep"
        )
        print(
            f"`uv lock` failed after the update (uv's error above). {outcome}; the other "
            "updated files are in place. Fix the cause, run `uv lock`, then `uv lock --check` "
            "and commit.",
            file=sys.stderr,
        )
    else:
        print(
            "`uv lock` failed (uv's error above): no uv.lock was written and `make install` "
            "needs one. Fix the cause (a copy without network: `copier copy --skip-tasks`, "
            "then `uv lock` once online) and run `uv lock`.",
            file=sys.stderr,
        )
    return 1


def main(operation: str = "copy") -> int:
    uv = shutil.which("uv")
    if uv is None:
        # Not an error of the project: the copy stands, and `make install` says what is
        # missing until the lock exists.
        print(
            "uv is not installed, so no uv.lock was written: install uv "
            "(https://docs.astral.sh/uv/), then run `uv lock` here and commit uv.lock.",
            file=sys.stderr,
        )
        return 0
    if PYPROJECT.exists() and has_conflict_markers(PYPROJECT.read_text(encoding="utf-8")):
        # `copier update` merged the user's edits and the template's with conflicts: the
        # update stands (as for any conflicted file) and the lock waits for the resolution.
        print(
            "pyproject.toml has merge conflicts from the update, so uv.lock was not "
            "re-resolved: resolve the conflicts in pyproject.toml, then run `uv lock` "
            "and commit both.",
            file=sys.stderr,
        )
        return 0
    previous = LOCK.read_bytes() if LOCK.exists() else None
    if operation == "update" and previous is None:
        previous = committed_lock()
        if previous is not None:
            LOCK.write_bytes(previous)
    env = {**os.environ}
    env.pop("VIRTUAL_ENV", None)  # the lock is the project's own, not the caller's venv
    result = subprocess.run([uv, "lock"], env=env, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        print(result.stderr, end="", file=sys.stderr)
        return 0
    if previous is not None:
        LOCK.write_bytes(previous)
    elif operation == "copy":
        LOCK.unlink(missing_ok=True)
    if any(marker in result.stderr for marker in NO_INTERPRETER):
        # This machine lacks the Python the service targets, and uv resolves with it: not
        # an error of the project. The copy or update stands (an update keeps the previous
        # lock, which `uv lock --check` will flag) and this says what to run.
        print(result.stderr, end="", file=sys.stderr)
        print(
            "uv.lock not (re)written: this machine has no Python matching requires-python. "
            "Run `uv lock` where one is installed (uv can download it) and commit uv.lock.",
            file=sys.stderr,
        )
        return 0
    if any(marker in result.stderr for marker in NO_NETWORK):
        # As without uv: the package index is out of reach, not an error of the project.
        print(result.stderr, end="", file=sys.stderr)
        kept = "the previous uv.lock is kept" if previous is not None else "no uv.lock was written"
        print(
            f"uv could not reach the package index, so {kept}: once online, run `uv lock` "
            "here and commit uv.lock.",
            file=sys.stderr,
        )
        return 0
    return fail(result.stderr, operation, kept=previous is not None)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
