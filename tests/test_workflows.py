"nbdev's GitHub workflows: test.yaml runs nbdev's CI action and then the README's test line; deploy.yaml builds the docs site."
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
WF = ROOT/'.github'/'workflows'

def _steps(name):
    wf = yaml.safe_load((WF/name).read_text())
    return [s for job in wf['jobs'].values() for s in job['steps']]

def test_test_workflow_runs_nbdev_ci_and_the_readme_line():
    steps = _steps('test.yaml')
    assert steps[0]['uses'].startswith('fastai/workflows/nbdev-ci')
    runs = '\n'.join(s.get('run', '') for s in steps)
    assert 'README.md' in runs and 'eval "$line"' in runs and 'nbdev_test --flags slow' in runs
    line = next(l for l in (ROOT/'README.md').read_text().splitlines() if l.startswith('pip install -e ".[dev]" && nbdev_test'))
    assert 'pytest tests/' in line

def test_deploy_workflow_builds_the_docs():
    wf = yaml.safe_load((WF/'deploy.yaml').read_text())
    assert any(s.get('uses', '').startswith('fastai/workflows/quarto-ghp') for s in _steps('deploy.yaml'))
    assert wf['permissions'] == {'contents': 'write', 'pages': 'write'}
