"""The local harness: an emulated API server and a kubelet stand-in (docs/harness.md).

Not the product: only `modelrollout demo`, `modelrollout cluster` and the tests import it (an
import-linter contract in pyproject.toml). It builds on kmock's internals, so it loads only
with the kmock releases it is tested with (supported_kmock.py).
"""

from .supported_kmock import require_supported_kmock

require_supported_kmock()
