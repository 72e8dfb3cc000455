"""Read a rendered Jenkinsfile back as a tree of blocks, to compare it with what the runner does.

The renderer writes one statement per line and opens/closes blocks with a trailing ``{`` / a lone ``}``
(one-line blocks such as ``expression { return ... }`` stay leaves). Enough to find stages, their
``when`` expressions, ``environment`` entries, agent ``args`` and ``post`` steps.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field


@dataclass
class Block:
    header: str
    items: list[Block | str] = field(default_factory=list)

    def blocks(self, header: str | None = None) -> list[Block]:
        return [
            b for b in self.items if isinstance(b, Block) and (header is None or b.header == header)
        ]

    def block(self, header: str) -> Block | None:
        found = self.blocks(header)
        return found[0] if found else None

    def lines(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]


def parse(text: str) -> Block:
    root = Block("")
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if line == "}":
            stack.pop()
        elif line.endswith("{") and not line.startswith("expression {"):
            block = Block(line[:-1].strip())
            stack[-1].items.append(block)
            stack.append(block)
        else:
            stack[-1].items.append(line)
    assert stack == [root], "unbalanced braces"
    return root


_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")


def literal(text: str) -> str:
    """Decode one single-quoted Groovy literal (the renderer's escapes)."""
    match = _LITERAL.fullmatch(text.strip())
    assert match, text
    return codecs.decode(match.group(1), "unicode_escape")


def stage_name(block: Block) -> str | None:
    match = re.fullmatch(r"stage\((.*)\)", block.header)
    return literal(match.group(1)) if match else None


def stages(parent: Block) -> list[tuple[Block, str | None]]:
    """Every ``stage(...)`` block under ``parent`` (parallel ones after their parent), with the
    parent's name."""
    out: list[tuple[Block, str | None]] = []
    for block in parent.blocks():
        if stage_name(block) is None:
            continue
        out.append((block, None))
        parallel = block.block("parallel")
        if parallel is not None:
            out += [(child, stage_name(block)) for child in parallel.blocks() if stage_name(child)]
    return out


def when_expression(stage: Block) -> str | None:
    when = stage.block("when")
    if when is None:
        return None
    for line in when.lines():
        if line.startswith("expression { return ") and line.endswith(" }"):
            return line[len("expression { return ") : -2]
    raise AssertionError("when without expression")


def environment(block: Block) -> dict[str, str]:
    """``NAME = 'value'`` entries (``credentials('id')`` entries as ``credentials:id``)."""
    env = block.block("environment")
    out: dict[str, str] = {}
    for line in env.lines() if env is not None else []:
        name, _, value = line.partition(" = ")
        if value.startswith("credentials("):
            out[name] = "credentials:" + literal(value[len("credentials(") : -1])
        else:
            out[name] = literal(value)
    return out


def agent_args(block: Block) -> str | None:
    """The ``args '...'`` of the block's ``agent { docker { ... } }`` (None: no docker agent)."""
    agent = block.block("agent")
    docker = agent.block("docker") if agent is not None else None
    if docker is None:
        return None
    for line in docker.lines():
        if line.startswith("args "):
            return literal(line[len("args ") :])
    return ""


_SH = re.compile(r"\bsh ('(?:[^'\\]|\\.)*')")


def shell_steps(block: Block) -> list[str]:
    """Every ``sh '...'`` body under ``block``, in order (also inside one-line blocks)."""
    out: list[str] = []
    for item in block.items:
        if isinstance(item, Block):
            out += shell_steps(item)
        else:
            out += [literal(m.group(1)) for m in _SH.finditer(item)]
    return out


def post_conditions(block: Block) -> dict[str, list[str]]:
    """condition -> every ``sh`` body of the block's ``post`` (None-free, in order)."""
    post = block.block("post")
    return {cond.header: shell_steps(cond) for cond in (post.blocks() if post else [])}


def post_steps(block: Block) -> dict[str, list[str]]:
    """condition -> the ``sh`` commands of the block's ``post``, as written."""
    post = block.block("post")
    out: dict[str, list[str]] = {}
    for cond in post.blocks() if post is not None else []:
        shells = [literal(line[3:]) for line in cond.lines() if line.startswith("sh '")]
        if shells:
            out[cond.header] = shells
    return out
