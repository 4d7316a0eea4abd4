"""The only package of the operator that talks to the API server (through the shared
client, modelrollout.kubeclient).

    api.py        the shared client's names the rest of the operator uses (Api, GROUP, errors)
    cache.py      what the operator owns, kept in memory by informers; wakes the owner's loop
    leader.py     leader election over a Lease
    manifests.py  bodies of the owned objects (pure)
    converge.py   what to write so a live object holds what the operator owns (pure)
    observe.py    cluster, smoke test, Prometheus -> one engine.Observations value
    apply.py      actions -> writes, then one status patch
"""
