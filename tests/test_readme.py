"The README is the notebook index's text, and its Quick start is what CI runs."
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _index_markdown():
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    return '\n\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown').replace('\n> ', '\n') + '\n'

def test_readme_is_index():
    assert (ROOT/'README.md').read_text() == _index_markdown(), "README.md differs from nbs/index.ipynb: regenerate it"

def test_quick_start_is_two_complete_lines():
    text = (ROOT/'README.md').read_text()
    first_section = text.split('\n## ')[1]
    assert first_section.startswith('Quick start'), "the README must begin with its Quick start"
    block = re.search(r'```sh\n(.*?)```', first_section, re.S).group(1).strip().splitlines()
    assert block == ['pip install -e ".[dev]" && modan_demo', 'pip install -e ".[dev]" && nbdev_test && pytest tests/']
    assert 'README.md' in (ROOT/'.ci'/'run').read_text()
