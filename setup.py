"""The package, plus the zoo's in-repository entries and the recipes as package data.

The repository keeps them at the top level (``zoo/``, ``configs/``); the wheel ships them as
``lmp_lightning/zoo_entries/`` and ``lmp_lightning/configs/``, found through
``importlib.resources`` (:mod:`lmp_lightning.resources`). Metadata is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

DATA = {"lmp_lightning.zoo_entries": "zoo", "lmp_lightning.configs": "configs"}
# Recipe folders (configs/camvid, ...) are data packages of their own; zoo entry folders have
# dashes in their names, so they are plain data of lmp_lightning.zoo_entries.
RECIPES = [f"lmp_lightning.configs.{name}" for name in find_namespace_packages(where="configs")]

setup(
    packages=[*find_packages(include=["lmp_lightning*"]), *DATA, *RECIPES],
    package_dir=DATA,
    package_data={
        "lmp_lightning": ["py.typed"],
        "lmp_lightning.zoo_entries": ["index.json", "*/*.json", "*/*.md", "*/*.safetensors"],
        **{name: ["*.yaml"] for name in ["lmp_lightning.configs", *RECIPES]},
    },
)
