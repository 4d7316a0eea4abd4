"""The only package that talks to the API server.

    api.py        a thin REST client over the official client's connection (paths, dicts)
    manifests.py  bodies of the owned objects (pure)
    observe.py    cluster, smoke test, Prometheus -> one engine.Observations value
    apply.py      actions -> writes, then one status patch
"""
