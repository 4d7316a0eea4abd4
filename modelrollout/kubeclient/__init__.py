"""How every modelrollout process and tool talks to the Kubernetes API server: the operator,
the gateway (``--kubernetes``), the kubectl plugin and the harness's kubelet stand-in.

    config.py     where the API server is: a kubeconfig file, else the pod's service
                  account, else ~/.kube/config (configuration); a copy for informers
    paths.py      one REST path per kind; the ModelDeployment's group, version and plural
    api.py        a thin client, plain dicts in and out (Api): get, list, create,
                  merge_patch, replace, delete, and open_stream for watches
    errors.py     a refused call in one line (describe_error), with what to check on
                  401, 403 and 404 (hint); 410 Gone, Retry-After
    backoff.py    the one retry policy of informers, and why its numbers
    informer.py   list, then watch, one kind in one namespace, on a thread (Informer)
    versions.py   which of two copies of an object is the later one (resourceVersion)
    ratelimit.py  a client-side rate limit whose urgent calls go first (RateLimiter, urgent)

It imports the standard library and the official ``kubernetes`` client only (nothing of
kopf, the operator or the serving side; import-linter checks it), so the gateway image
carries it without kopf and the model server never loads it.
"""

from .api import MERGE_PATCH, Api, Listing
from .backoff import Backoff
from .config import ConfigurationError, configuration, for_informers
from .errors import describe_error, hint, is_api_answer, is_gone, retry_after_seconds, short_error
from .informer import Informer, stop_all
from .paths import GROUP, PLURAL, VERSION, path, resource_name
from .ratelimit import RateLimiter, urgent
from .versions import latest, newer, version_of

__all__ = [
    "GROUP",
    "MERGE_PATCH",
    "PLURAL",
    "VERSION",
    "Api",
    "Backoff",
    "ConfigurationError",
    "Informer",
    "Listing",
    "RateLimiter",
    "configuration",
    "describe_error",
    "for_informers",
    "hint",
    "is_api_answer",
    "is_gone",
    "latest",
    "newer",
    "path",
    "resource_name",
    "retry_after_seconds",
    "short_error",
    "stop_all",
    "urgent",
    "version_of",
]
