"""The code's shape as README promises it: a layout table that names every module, and one-way
imports (no cycles, type-only ones included; nothing in the library imports `experiments`)."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("unlearn_jax", "experiments")


def _layout_table() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  return re.search(r"## Layout\n(.*?)\n\n", text, re.S).group(1)


def _entries(directory: str) -> list[str]:
  """Module files (not __init__) and package directories directly in `directory`."""
  names = []
  for name in sorted(os.listdir(os.path.join(ROOT, directory))):
    path = os.path.join(ROOT, directory, name)
    if name.endswith(".py") and name != "__init__.py":
      names.append(name)
    elif os.path.isfile(os.path.join(path, "__init__.py")):
      names.append(name + "/")
  return names


def test_readme_layout_names_every_module_and_package():
  table = _layout_table()
  missing = []
  for directory in PACKAGES + ("unlearn_jax/train",):
    for entry in _entries(directory):
      stem = entry.removesuffix(".py").removesuffix("/")
      if directory == "unlearn_jax/train":   # named inside the train/ row
        found = f"`{stem}`" in table
      else:
        found = f"`{directory}/{entry}`" in table or re.search(
            rf"`{directory}/[^`]*`(, `[^`]*`)*, `{re.escape(entry)}`", table) is not None
      if not found:
        missing.append(f"{directory}/{entry}")
  assert not missing, f"README's layout table does not name {missing}"


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT).removesuffix(".py").replace(os.sep, ".")
  return rel.removesuffix(".__init__")


def _modules() -> dict[str, str]:
  found = {}
  for package in PACKAGES:
    for base, _, files in os.walk(os.path.join(ROOT, package)):
      for name in files:
        if name.endswith(".py"):
          path = os.path.join(base, name)
          found[_module_name(path)] = path
  return found


def _imports(path: str, modules: dict) -> set[str]:
  """The project modules `path` imports anywhere in its body (`if TYPE_CHECKING:` too)."""
  with open(path) as f:
    tree = ast.parse(f.read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name in modules)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        sub = f"{node.module}.{alias.name}"
        out.add(sub if sub in modules else node.module)
  return {m for m in out if m in modules}


def test_imports_go_one_way():
  modules = _modules()
  graph = {name: _imports(path, modules) for name, path in modules.items()}
  into_experiments = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith(
      "unlearn_jax") for d in deps if d.startswith("experiments"))
  assert not into_experiments
  # A package's __init__ gathers its modules, so an edge into a package is an edge into each
  # of the modules it imports; a module importing its own package's __init__ is no cycle.
  state, cycles = {}, []

  def visit(name, stack):
    state[name] = "open"
    for dep in graph[name]:
      if name.startswith(dep + "."):
        continue
      if state.get(dep) == "open":
        cycles.append(stack[stack.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, stack + [dep])
    state[name] = "done"

  for name in sorted(graph):
    if name not in state:
      visit(name, [name])
  assert not cycles, f"import cycles: {cycles}"
