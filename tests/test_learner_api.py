"modan_nb.learner keeps its public names and its command line after the views moved to modan_nb.augment (notebook 05a)."
import configparser, importlib, os, subprocess, sys
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).parent))
from _pretrain_helpers import tiny_table

ROOT = Path(__file__).parents[1]
# modan_nb.learner.__all__ before notebook 06 was split (commit fdca3bd): every name must stay importable from there
LEARNER_ALL = ['TARGETS', 'METHODS', 'SCHEDULES', 'RECIPES', 'NULLABLE', 'LABEL_FROM', 'DATA_OPTIONS', 'RUN_OPTIONS',
               'RECIPE_FIELDS', 'crop_thetas', 'ViewAugment', 'target_index', 'MultiViewCallback', 'MultiViewLoss',
               'PretrainRecipe', 'paper_recipe', 'authors_recipe', 'get_recipe', 'make_loss', 'make_augment', 'make_opt_func',
               'lr_schedule', 'LinearClassifier', 'ResumableCheckpoint', 'check_same_settings', 'repair_history',
               'ResumableCSVLogger', 'NoValidation', 'check_pretrain_table', 'ZeroLossGuard', 'pretrain',
               'remove_stale_temp_files', 'modan_pretrain', 'simclr_pretrain', 'supcon_pretrain', 'ce_pretrain', 'pretrain_cli']

def test_every_public_name_stays_importable_from_learner():
    learner = importlib.import_module('modan_nb.learner')
    assert [n for n in LEARNER_ALL if not hasattr(learner, n)] == []
    assert sorted(set(LEARNER_ALL) - set(learner.__all__)) == [] # `from modan_nb.learner import *` still gives them
    ns = {}; exec('from modan_nb.learner import *', ns)
    assert [n for n in LEARNER_ALL if n not in ns] == []

def test_views_are_one_object_in_both_modules():
    from modan_nb import augment, learner
    assert learner.ViewAugment is augment.ViewAugment and learner.crop_thetas is augment.crop_thetas
    assert isinstance(learner.make_augment(learner.paper_recipe('modan'), 16), augment.ViewAugment)

def test_console_script_points_at_the_cli():
    cfg = configparser.ConfigParser(); cfg.read(ROOT/'settings.ini')
    scripts = dict(s.strip().split('=') for s in cfg['DEFAULT']['console_scripts'].split() if s.strip())
    mod, fn = scripts['modan_pretrain'].split(':')
    assert (mod, fn) == ('modan_nb.learner', 'pretrain_cli') and callable(getattr(importlib.import_module(mod), fn))

def test_python_m_learner_pretrains(tmp_path):
    csv = tiny_table(tmp_path, n=16, px=8)
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'MODAN_DEVICE': 'cpu', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-m', 'modan_nb.learner', '--data', str(csv), '--epochs', '1', '--bs', '8',
                        '--size', '8', '--path', str(tmp_path/'run')], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'encoder saved to' in r.stdout and (tmp_path/'run'/'encoder.pth').is_file()
