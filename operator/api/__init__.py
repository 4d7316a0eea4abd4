"""The ModelDeployment API: one module per version declares every field (v1alpha1.py).

What is generated from it (scripts/generate_api.py writes the files): the CRD (crd.py, its
schema shaped by openapi.py) and the field reference (reference.py). What a field may declare
beyond its type, and the base of every API object, is objects.py; durations and single-value
checks have their own small modules. Pure: no I/O.
"""
