"""Exceptions with messages fit to show a user on one line."""


class EdgeECGError(Exception):
    """Base of every error edgeecg raises on purpose. CLIs print `str(err)` on one line and exit non-zero."""


class UsageError(EdgeECGError):
    """Bad arguments or options (CLI exit code 2)."""


class InputError(EdgeECGError):
    """An input file that cannot be used: unreadable, not an image, too large, truncated."""


class BundleError(EdgeECGError):
    """A model bundle that is missing, of an unknown format, or whose files do not match the manifest."""


class MissingExtraError(EdgeECGError):
    """An optional dependency is not installed; the message names the extra that provides it."""


class BackendError(EdgeECGError):
    """An inference backend cannot run here (no GPU, no matching TensorRT plan, bad input shape)."""
