"""YAML as Go's writers print it (`kubectl kustomize`, Helm): YAML 1.2 numbers. PyYAML reads
YAML 1.1, where an exponent without a dot (`1e-05`, Go's way to write 0.00001) is a string."""

from __future__ import annotations

import re

import yaml


class GoYamlLoader(yaml.SafeLoader):
    pass


GoYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_all(text: str) -> list:
    """The documents of ``text``, empty ones left out."""
    return [doc for doc in yaml.load_all(text, Loader=GoYamlLoader) if doc]
