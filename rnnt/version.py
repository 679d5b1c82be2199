"""Package version and bundle format version."""

__version__ = "0.1.0"

#: Version of the bundle contract (docs/bundle.md). Bump on incompatible change.
BUNDLE_FORMAT_VERSION = 1
