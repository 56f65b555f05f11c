"""A guard against YAML that expands beyond a sane size (aliases of aliases: a "billion laughs"
config), checked before jsonargparse builds anything from it."""

from __future__ import annotations

from pathlib import Path

import yaml

from lmp_lightning.errors import InputError

MAX_NODES = 100_000
"""The most YAML nodes (scalars, lists, mappings) a configuration may expand to, aliases
resolved: the shipped recipes have under 300."""


def expanded_size(text: str) -> int:
    """The number of nodes of YAML ``text`` with every alias expanded, counted without expanding
    (each node's size is computed once); 0 for text that is not YAML.

    Example:
        >>> expanded_size("a: &x [1, 2]\\nb: [*x, *x]")
        13
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return 0  # not YAML: the parser says what is wrong
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        sizes[id(node)] = total
        return total

    try:
        return size(root) if root is not None else 0
    except RecursionError:
        return MAX_NODES + 1


def _is_mapping(text: str) -> bool:
    return isinstance(yaml.compose(text, Loader=yaml.SafeLoader), yaml.MappingNode)


def check_config_sizes(args: list[str]) -> None:
    """Refuses a command line whose YAML (``--config`` files, other YAML files, inline values)
    expands to more than :data:`MAX_NODES` nodes, or whose YAML file is not a mapping.

    Raises:
        InputError: naming the file or flag (and its expanded size).
    """
    for arg in args:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        path = Path(value)
        is_file = value.endswith((".yaml", ".yml")) and path.is_file()
        if is_file:
            text, source = path.read_text(errors="replace"), repr(str(path))
        elif "*" in value and "&" in value:  # an inline YAML value with aliases
            text, source = value, f"the value {value[:40]!r}"
        else:
            continue
        nodes = expanded_size(text)
        if is_file and nodes and not _is_mapping(text):
            raise InputError(
                f"config file {source} is not a mapping of sections (trainer:, model:, data:)"
            )
        if nodes > MAX_NODES:
            raise InputError(
                f"{source} expands to {nodes} YAML nodes, aliases resolved (at most {MAX_NODES}):"
                " refused, nested aliases of aliases"
            )
