"""The shape of ``bot/``: packages by concept, short functions, imports that point one way, pure
layers that stay pure, and a README whose layout names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
MAX_FUNCTION_LINES = 60
# At the top of bot/: the packages, and the settings, logging and metrics modules.
TOP = {"config.py", "logs.py", "metrics.py", "__init__.py", "__main__.py"}
# The packages (and top modules) from the ground up, as docs/architecture.md draws them: each
# imports only itself and those below it, never one above or beside it.
LAYERS = (
    "bot.logs",
    "bot.metrics",
    "bot.store",
    "bot.deployhq",
    "bot.config",
    "bot.slack",
    "bot.runtime",
    "bot.words",
    "bot.messages",
    "bot.cards",
    "bot.actions",
    "bot.bolt",
    "bot.web",
    "bot.cli",
    "bot.__main__",
)


def parse(path: Path) -> ast.Module:
    """The module's syntax tree. CPython 3.11's parser keeps one recursion count per process,
    and a traceback printed meanwhile in another thread (a bot a test left finishing its work:
    3.11's tracebacks parse the failing line) can upset it, raising SystemError for sound code;
    parsing again is then correct."""
    for _ in range(3):
        try:
            return ast.parse(path.read_text())
        except SystemError:
            continue
    return ast.parse(path.read_text())


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(BOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules of ``bot`` that ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            # ``from bot import x`` imports the module x; the package itself only if a name in
            # it is not a module.
            whole = any(name not in known for name in submodules)
            names = submodules + ([node.module] if whole else [])
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    known = set(modules())
    edges = {name: imports(path, known) for name, path in modules().items()}
    # Importing a module runs its packages' __init__ first; those import nothing of bot here.
    return {name: {d for d in deps if d != name} for name, deps in edges.items()}


def test_no_function_is_over_60_lines():
    long = set()
    for path in modules().values():
        for node in ast.walk(parse(path)):
            if not isinstance(node, ast.FunctionDef) or node.end_lineno is None:
                continue
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.add(f"{path.relative_to(ROOT)}:{node.name}")
    assert long == set()


def test_the_top_of_bot_holds_only_packages_and_the_settings_logging_and_metrics():
    entries = {p.name for p in BOT.iterdir() if p.name != "__pycache__"}
    packages = {p.name for p in BOT.iterdir() if (p / "__init__.py").exists()}
    assert entries - packages <= TOP, entries - packages - TOP
    assert len(entries - {"__init__.py", "__main__.py"}) <= 14  # eleven packages, three modules


def layer(name: str) -> int:
    """Where a module stands in ``LAYERS`` (``bot`` itself, importing nothing, below all)."""
    if name == "bot":
        return -1
    return next(i for i, top in enumerate(LAYERS) if name == top or name.startswith(top + "."))


def test_every_package_is_in_the_order_once():
    tops = {".".join(name.split(".")[:2]) for name in modules() if name != "bot"}
    assert sorted(tops) == sorted(LAYERS)


def test_each_package_imports_only_those_below_it():
    wrong = sorted(
        f"{name} -> {dep}"
        for name, deps in graph().items()
        for dep in deps
        if layer(dep) > layer(name)
        or (layer(dep) == layer(name) and name.split(".")[:2] != dep.split(".")[:2])
    )
    assert wrong == []


def test_the_architecture_page_draws_the_same_order():
    page = (ROOT / "docs" / "architecture.md").read_text()
    drawn = re.search(r"From the top down.*?```\n(.*?)```", page, re.S)
    assert drawn is not None
    lines = drawn.group(1).splitlines()
    names = [line.split()[0].rstrip("/").removesuffix(".py") for line in lines]
    assert [f"bot.{name}" for name in reversed(names)] == list(LAYERS)


def test_no_module_imports_itself_through_others():
    edges = graph()
    cycles = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(edges[name]):
            if state.get(dep) == "open":
                cycles.append([*trail[trail.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def reaches(name: str) -> set[str]:
    edges, seen, todo = graph(), set(), [name]
    while todo:
        for dep in edges[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def third_party(name: str) -> set[str]:
    """The top-level packages outside ``bot`` that a module imports."""
    found = set()
    for node in ast.walk(parse(modules()[name])):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found - {"bot", "__future__"}


def test_messages_and_card_rules_are_pure():
    """What the bot says, and how a card moves, reach no client, store, parser or I/O."""
    pure = [n for n in modules() if n.startswith(("bot.messages", "bot.words"))] + [
        "bot.cards.rules",
    ]
    allowed = {
        "bot.messages",
        "bot.words",
        # DeployHQ's values, parsed: a deployment, a range of commits, a preview.
        "bot.deployhq.deployment",
        "bot.deployhq.commits",
        "bot.deployhq.previews",
        "bot.deployhq.auto_deploys",
    }
    for name in pure:
        outside = {d for d in reaches(name) if not any(d.startswith(a) for a in allowed)}
        assert outside == set(), name
        for dep in {name} | reaches(name):
            stdlib_only = third_party(dep) <= {
                "dataclasses",
                "datetime",
                "typing",
                "hashlib",
                "re",
                "json",
                "math",
                "collections",
            }
            assert stdlib_only, (dep, third_party(dep))


def test_slack_errors_are_read_in_the_slack_clients_module_only():
    for name, path in modules().items():
        if name != "bot.slack.client":
            assert "SlackClientError" not in path.read_text(), name


def test_the_architecture_map_names_every_module():
    built = (ROOT / "docs" / "architecture.md").read_text()
    layout = re.search(r"```\n(bot/.*?)```", built, re.S)
    assert layout is not None
    listed = set(re.findall(r"[\w]+(?:\.py|/)", layout.group(1)))
    for path in BOT.rglob("*.py"):
        if path.name != "__init__.py":
            assert path.name in listed, path
    for package in (p for p in BOT.iterdir() if (p / "__init__.py").exists()):
        assert f"{package.name}/" in listed, package


def test_the_readme_is_short_and_every_page_it_links_exists():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"\]\(((?:docs/)?[\w./-]+\.(?:md|yml|json))\)", readme))
    assert {"docs/cards.md", "docs/settings.md", "docs/architecture.md"} <= linked
    assert [page for page in linked if not (ROOT / page).exists()] == []
    docs = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert docs <= linked, docs - linked


def test_one_place_per_layer_decides_what_a_missing_store_means():
    """Only the store's own helper catches StoreUnavailable; each layer says what a missing store
    means in one module (its WITHOUT_STORE), and docs/architecture.md's table says the same."""
    import importlib

    from bot.store.kv import WithoutStore

    catching = sorted(
        name
        for name, path in modules().items()
        if re.search(
            r"except[ (][^:]*StoreUnavailable|suppress\(StoreUnavailable", path.read_text()
        )
    )
    assert catching == ["bot.store.kv"]
    declaring = [n for n, p in modules().items() if "WithoutStore(" in p.read_text()]
    layers = [".".join(n.split(".")[:2]) for n in declaring if n != "bot.store.kv"]
    assert len(layers) == len(set(layers)), declaring  # one module per layer
    page = " ".join((ROOT / "docs" / "architecture.md").read_text().split())
    for name in declaring:
        if name == "bot.store.kv":
            continue
        decided = importlib.import_module(name).WITHOUT_STORE
        assert isinstance(decided, WithoutStore)
        for step, meaning in decided.meanings.items():
            assert f"| {decided.layer} | {step} | {meaning} |" in page, (name, step)
