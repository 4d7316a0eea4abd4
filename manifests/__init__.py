"""The folder manifests/ is also the package ``modelrollout.manifests``: its YAML files ship in
the wheel as package data (pyproject.toml), so an installed modelrollout reads the very files of
this folder with importlib.resources (modelrollout/install_manifests.py). Nothing else lives here."""
