#!/usr/bin/env python
"""Writes the flag and preset tables of docs/command.md from the code that declares them.

    python docs/reference_tables.py          # rewrite the two blocks in docs/command.md
    python docs/reference_tables.py --check  # exit 1 if docs/command.md is out of date

The blocks sit between ``<!-- flags: ... -->`` / ``<!-- /flags -->`` and
``<!-- presets: ... -->`` / ``<!-- /presets -->``; tests/test_readme.py runs
the check, so a new option or preset cannot be left out of the reference.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, 'docs', 'command.md')
NAME = 'docs/command.md'


def blocks() -> dict[str, str]:
    from gan_trainer.cli.train import flag_reference
    from gan_trainer.run.presets import preset_table

    return {'flags': flag_reference(), 'presets': preset_table()}


def updated(text: str) -> str:
    for name, body in blocks().items():
        pattern = re.compile(rf'(<!-- {name}:[^\n]*-->\n)(.*?)(<!-- /{name} -->)', re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f'reference_tables.py: error: {NAME} has no <!-- {name}: --> block')
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(3), text)
    return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(PAGE, encoding='utf-8') as f:
        text = f.read()
    new = updated(text)
    if '--check' in argv:
        if new != text:
            print(f'reference_tables.py: {NAME} is out of date: run python '
                  'docs/reference_tables.py', file=sys.stderr)
            return 1
        return 0
    with open(PAGE, 'w', encoding='utf-8') as f:
        f.write(new)
    return 0


if __name__ == '__main__':
    sys.exit(main())
