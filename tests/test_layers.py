"""The package's layers, read from its import statements: nothing imports upwards or in a circle.

``gan_trainer.cli`` (the command line) sits on ``gan_trainer.run`` (the run
as a library), which sits on everything else; a lower module that imported
``run`` or ``cli`` would tie the library to the command. A module whose
name starts with ``_`` is its package's own: another package that needs
something from it gets a public name of that package instead. And the
module-level imports form no circle (an import inside a function, made
when it is called, is how a module reaches a heavy or optional one late;
it is held to the first two rules but not to this one).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'gan_trainer'


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path: Path):
    """``(imported module, at module level)`` for each ``gan_trainer`` import in ``path``."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    top = set(map(id, tree.body))
    package = module_name(path) if path.name == '__init__.py' else module_name(path).rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1]
                                + ([base] if base else []))
            # ``from gan_trainer.nets import _layers`` imports a module too.
            names = [base] + [f'{base}.{alias.name}' for alias in node.names
                              if (PACKAGE.parent / f'{base}.{alias.name}'.replace('.', '/')).is_dir()
                              or (PACKAGE.parent / (f'{base}.{alias.name}'.replace('.', '/') + '.py')).is_file()]
        else:
            continue
        for name in names:
            if name == 'gan_trainer' or name.startswith('gan_trainer.'):
                yield name, id(node) in top


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob('*.py'))}


def layer(name: str) -> int:
    """2 for the command line, 1 for the run library, 0 for the rest."""
    return 2 if name.startswith('gan_trainer.cli') else 1 if name.startswith('gan_trainer.run') else 0


@pytest.mark.parametrize('name', sorted(MODULES))
def test_no_module_imports_a_higher_layer_or_another_packages_private_module(name):
    for target, _ in imports(MODULES[name]):
        assert layer(target) <= layer(name), f'{name} imports {target}'
        private = [i for i, part in enumerate(target.split('.')) if part.startswith('_')]
        if private:
            owner = '.'.join(target.split('.')[:private[0]])
            assert name == owner or name.startswith(owner + '.'), f'{name} imports {target}'


def test_the_module_level_imports_form_no_circle():
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, top in imports(path):
            # A package's __init__ runs before any of its modules: importing
            # gan_trainer.x.y depends on gan_trainer.x too.
            parts = target.split('.')
            for i in range(2, len(parts) + 1):
                prefix = '.'.join(parts[:i])
                if top and prefix in MODULES and prefix != name:
                    graph[name].add(prefix)
    # A package's __init__ importing its own modules is how packages work,
    # not a circle: leave out the edges from a module up to its own package.
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + '.')}
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 'open':
                cycle = stack[stack.index(target):] + [target]
                pytest.fail('import circle: ' + ' -> '.join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 'done'

    for name in sorted(graph):
        if name not in state:
            visit(name)
