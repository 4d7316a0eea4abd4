"""What the harness's API server adds to kmock, as pure functions over plain dicts: label and
field selectors, server-side Tables, OpenAPI documents, structural schema validation and
patches. No I/O here; harness/apiserver.py serves them."""
