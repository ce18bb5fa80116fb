"""Exception types shared across affectlab.

Every error that reaches a user names the file, key or value at fault and, where there is a
closed set of valid choices, lists them.
"""

from __future__ import annotations


class AffectlabError(Exception):
    """Base class for errors that the CLI reports as a message and a non-zero exit code."""


class ConfigError(AffectlabError):
    """A configuration file or override is invalid; the message lists every problem found."""


class DatasetError(AffectlabError):
    """A dataset card or manifest is invalid (missing root, escaping path, duplicate id...)."""


class StorageError(AffectlabError):
    """A storage URI cannot be resolved or an output cannot be read or published."""


class MediaError(AffectlabError):
    """A media file (audio or video) cannot be decoded or is unusable for the requested stage."""


class RegistryError(AffectlabError):
    """An unknown name was looked up in a registry; the message lists the known names."""


def unknown_name_error(kind: str, name: str, known: list[str] | tuple[str, ...]) -> RegistryError:
    """Build a RegistryError for an unknown ``name`` among ``known`` (with a close-match hint)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return RegistryError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}.{hint}")
