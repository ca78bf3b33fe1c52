"The two named recipes as configurations: `configs/paper.yaml` and `configs/authors.yaml` load with the expected values, and both run end to end at (shrunk) demo scale on SynthRIN with their recipe reaching pretraining and transfer."
import json
from pathlib import Path
import pytest

from modan_nb.cli import load_run_config
from modan_nb.config import ExperimentConfig, demo_scale, network, pretrain_recipe, transfer_recipe
from modan_nb.runner import encoder_key, method_slug, run_experiment
from modan_nb.models import load_encoder

CONFIGS = Path(__file__).resolve().parents[1]/'configs'

def test_authors_yaml_holds_what_the_authors_scripts_ran():
    c = ExperimentConfig.from_yaml(CONFIGS/'authors.yaml', check_paths=False)
    p, t = c.pretrain, c.transfer
    assert (c.recipe, p.stem, p.normalize, p.crop_scale, p.conv1) == ('authors', 'torchvision', False, [0.08, 1.0], 'random')
    assert (c.stats.alternative, t.select, t.valid_frac, t.probe_lr, t.probe_bn, t.head, t.probe_head, t.normalize) == \
           ('greater', 'last', 0.0, 1e-3, 'train', 'features_as_logits', 'two_logit', 'none')
    modan, simclr, ce = (pretrain_recipe(m, c) for m in ('ModAn-MulSupCon', 'SimCLR', '165-class'))
    assert (modan.head, modan.opt, modan.lr, modan.mom, modan.wd, modan.schedule, modan.warmup_epochs, modan.milestones, modan.epochs) == \
           ('fc1000', 'sgd', 0.05, 0.9, 1e-4, 'step', 3, (700, 800, 900), 200)
    assert (simclr.head, simclr.temperature, simclr.schedule, simclr.epochs, simclr.blur_p, simclr.lr) == ('mlp_nobn', 0.1, 'cosine_epoch', 200, 1.0, 0.05)
    assert (ce.weights, ce.conv1, ce.bs, ce.augment, ce.epochs) == ('imagenet', 'random', 32, False, 200)
    assert all(r.stem == 'torchvision' and not r.normalize and r.crop_scale == (0.08, 1.) for r in (modan, simclr, ce))
    t = transfer_recipe(c)
    assert (t.lr, t.step_size, t.gamma, t.epochs, t.bs, t.select, t.valid_frac, t.probe_lr, t.probe_bn) == (1e-4, 5, 0.1, 10, 32, 'last', 0., 1e-3, 'train')
    assert network(c) == dict(arch='resnet18', stem='torchvision', normalize=False, conv1='random')

def test_paper_yaml_is_the_papers_text_with_radimagenets_tables():
    c = ExperimentConfig.from_yaml(CONFIGS/'paper.yaml', check_paths=False)
    assert (c.recipe, c.pretrain.stem, c.pretrain.normalize, c.stats.alternative, c.transfer.select, c.pretrain.epochs, c.pretrain.bs) == ('paper', 'paper', True, 'two-sided', 'best', 1000, 256)
    assert c.tasks['acl'] == dict(reader='radimagenet', root='~/data/radimagenet_downstream', task='acl', agg='max')   # no fold: all five
    assert c.tasks['thyroid']['reader'] == 'radimagenet' and c.tasks['thyroid']['task'] == 'thyroid'
    assert pretrain_recipe('ModAn-MulSupCon', c).head == 'mlp' and transfer_recipe(c).select == 'best'

def test_defaults_are_the_papers_text():
    c = ExperimentConfig().validate(check_paths=False)
    assert pretrain_recipe('ModAn-MulSupCon', c).as_dict() == {**__import__('modan_nb.learner', fromlist=['x']).paper_recipe('modan').as_dict()}
    assert transfer_recipe(c).settings() == __import__('modan_nb.transfer', fromlist=['x']).TransferRecipe.paper(repeats=10).settings()

def test_pretraining_settings_are_in_the_encoder_key():
    c = ExperimentConfig().validate(check_paths=False)
    k = encoder_key('SimCLR', c)
    for change in (dict(pretrain=dict(stem='torchvision')), dict(pretrain=dict(head='mlp_nobn')), dict(pretrain=dict(schedule='step')),
                   dict(pretrain=dict(crop_scale=[0.08, 1.])), dict(pretrain=dict(normalize=False)), dict(recipe='authors'),
                   dict(pretrain=dict(overrides={'SimCLR': {'lr': 0.5}}))):
        assert encoder_key('SimCLR', ExperimentConfig(**change).validate(check_paths=False)) != k, change
    for change in (dict(transfer=dict(select='last')), dict(transfer=dict(probe_bn='train')), dict(stats=dict(alternative='greater')),
                   dict(pretrain=dict(overrides={'165-class': {'bs': 32}}))):
        assert encoder_key('SimCLR', ExperimentConfig(**change).validate(check_paths=False)) == k, change   # not a pretraining setting of SimCLR
    assert encoder_key('ImageNet', ExperimentConfig(pretrain=dict(stem='paper')).validate(False)) != encoder_key('ImageNet', ExperimentConfig(pretrain=dict(stem='torchvision')).validate(False))

TINY = dict(data=dict(synth=dict(n_per_class=3, mrnet=[12, 8], mrnet_slices=[2, 2], busi=32, ddti=40)), pretrain=dict(epochs=1, bs=16, size=16),
            transfer=dict(size=16, epochs=1, bs=8), embedding=dict(umap=False))

def _offline(*a, **k): raise FileNotFoundError("ImageNet weights for resnet18 are not available offline: (simulated)")

@pytest.mark.parametrize('name', ['authors', 'paper'])
def test_config_runs_at_demo_scale_with_its_recipe(name, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    monkeypatch.setattr('modan_nb.models.imagenet_state_dict', _offline)   # the same on every machine
    full = load_run_config(CONFIGS/f'{name}.yaml', demo=True)          # what `modan_run <file> --demo` runs
    assert (full.name, full.data.pretrain, full.tasks, full.transfer.n_folds, full.transfer.repeats) == (f'{name}_demo', None, {}, 2, 2)
    assert full.pretrain.stem == ('torchvision' if name == 'authors' else 'paper') and full.recipe == name
    cfg = demo_scale(ExperimentConfig.from_yaml(CONFIGS/f'{name}.yaml', check_paths=False),
                       methods=['ModAn-MulSupCon', 'SimCLR', '165-class', 'ImageNet'], **TINY)
    res = run_experiment(cfg, progress=False, log=lambda *a: None)
    run = res['run']
    expected_not_run = {'ImageNet', '165-class'} if name == 'authors' else {'ImageNet'}   # the authors' 165-class starts from ImageNet
    assert set(res['not_run']) == expected_not_run
    stem = 'torchvision' if name == 'authors' else 'paper'
    heads = dict(authors=('fc1000', 'mlp_nobn'), paper=('mlp', 'mlp'))[name]
    schedules = dict(authors=('step', 'cosine_epoch'), paper=('cosine', 'cosine'))[name]
    for m, head, sched in zip(('ModAn-MulSupCon', 'SimCLR'), heads, schedules):
        rec = json.loads((run/'encoders'/f'{method_slug(m)}.json').read_text())
        assert (rec['info']['recipe'], rec['info']['stem'], rec['info']['head'], rec['info']['schedule']) == (name, stem, head, sched)
        assert rec['key']['recipe']['crop_scale'] == ([0.08, 1.0] if name == 'authors' else [0.2, 1.0])
        enc = load_encoder(run/'encoders'/f'{method_slug(m)}.pth')[0]
        assert enc.net.conv1.kernel_size == ((7, 7) if name == 'authors' else (3, 3))
    tc = json.loads((run/'transfer'/'breast'/'config.json').read_text())['breast']
    flat = json.dumps(tc)
    want = dict(authors=('"last"', '"train"', '"features_as_logits"', '"two_logit"'), paper=('"best"', '"eval"', '"linear"'))[name]
    assert all(w in flat for w in want), flat[:2000]
    report = res['report'].read_text()
    assert f"Preset `recipe: {name}`" in report and f"first layer `{stem}`" in report
    assert f"alternative={'greater' if name == 'authors' else 'two-sided'}" in report.replace("'", '')
    assert ('uncorrected' if name == 'authors' else 'Holm-corrected') in report

BEFORE = {   # captured from the flat ExperimentConfig (main at 4bebefd) before issue 20: per config, each PretrainRecipe as its
             # changes from the preset, the TransferRecipe's changes from its preset, what differs per method, the network,
             # and (demo configs) the encoder key without its recipe
    'paper': dict(
        pretrain={'ModAn-MulSupCon': {}, 'SimCLR': {}, 'SupCon': {}, '165-class': {}},
        transfer={},
        per_method={},
        network={'arch': 'resnet18', 'stem': 'paper', 'normalize': True, 'conv1': 'fold'},
        encoder_key=None,
    ),
    'authors': dict(
        pretrain={'ModAn-MulSupCon': {}, 'SimCLR': {}, 'SupCon': {}, '165-class': {}},
        transfer={},
        per_method={'SimCLR': {'head': 'two_logit'}},
        network={'arch': 'resnet18', 'stem': 'torchvision', 'normalize': False, 'conv1': 'random'},
        encoder_key=None,
    ),
    'demo': dict(
        pretrain={'ModAn-MulSupCon': {'bs': 128, 'epochs': 3, 'stem': 'torchvision'}, 'SimCLR': {'bs': 128, 'epochs': 3, 'stem': 'torchvision'}, 'SupCon': {'bs': 128, 'epochs': 3, 'stem': 'torchvision'}, '165-class': {'bs': 128, 'epochs': 3, 'stem': 'torchvision'}},
        transfer={'size': 32, 'epochs': 2, 'lr': 0.001, 'step_size': 1, 'n_folds': 2, 'repeats': 2},
        per_method={},
        network={'arch': 'resnet18', 'stem': 'torchvision', 'normalize': True, 'conv1': 'fold'},
        encoder_key={
            'ModAn-MulSupCon': {'method': 'ModAn-MulSupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            'SimCLR': {'method': 'SimCLR', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            '165-class': {'method': '165-class', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32, 'ce_label': 'label'},
            'ImageNet': {'method': 'ImageNet', 'arch': 'resnet18', 'stem': 'torchvision', 'normalize': True, 'conv1': 'fold'},
            'Scratch': {'method': 'Scratch', 'arch': 'resnet18', 'stem': 'torchvision', 'normalize': True, 'seed': 0},
            'SupCon': {'method': 'SupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
        },
    ),
    'authors_demo': dict(
        pretrain={'ModAn-MulSupCon': {'bs': 128, 'epochs': 3}, 'SimCLR': {'bs': 128, 'epochs': 3}, 'SupCon': {'bs': 128, 'epochs': 3}, '165-class': {'epochs': 3}},
        transfer={'size': 32, 'epochs': 2, 'lr': 0.001, 'step_size': 1, 'n_folds': 2, 'repeats': 2},
        per_method={'SimCLR': {'head': 'two_logit'}},
        network={'arch': 'resnet18', 'stem': 'torchvision', 'normalize': False, 'conv1': 'random'},
        encoder_key={
            'ModAn-MulSupCon': {'method': 'ModAn-MulSupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            'SimCLR': {'method': 'SimCLR', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            '165-class': {'method': '165-class', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32, 'ce_label': 'label'},
            'ImageNet': {'method': 'ImageNet', 'arch': 'resnet18', 'stem': 'torchvision', 'normalize': False, 'conv1': 'random'},
            'Scratch': {'method': 'Scratch', 'arch': 'resnet18', 'stem': 'torchvision', 'normalize': False, 'seed': 0},
            'SupCon': {'method': 'SupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
        },
    ),
    'paper_demo': dict(
        pretrain={'ModAn-MulSupCon': {'bs': 128, 'epochs': 3}, 'SimCLR': {'bs': 128, 'epochs': 3}, 'SupCon': {'bs': 128, 'epochs': 3}, '165-class': {'bs': 128, 'epochs': 3}},
        transfer={'size': 32, 'epochs': 2, 'lr': 0.001, 'step_size': 1, 'n_folds': 2, 'repeats': 2},
        per_method={},
        network={'arch': 'resnet18', 'stem': 'paper', 'normalize': True, 'conv1': 'fold'},
        encoder_key={
            'ModAn-MulSupCon': {'method': 'ModAn-MulSupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            'SimCLR': {'method': 'SimCLR', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
            '165-class': {'method': '165-class', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32, 'ce_label': 'label'},
            'ImageNet': {'method': 'ImageNet', 'arch': 'resnet18', 'stem': 'paper', 'normalize': True, 'conv1': 'fold'},
            'Scratch': {'method': 'Scratch', 'arch': 'resnet18', 'stem': 'paper', 'normalize': True, 'seed': 0},
            'SupCon': {'method': 'SupCon', 'seed': 0, 'pretrain': 'None', 'pretrain_root': None, 'synth': {'n_per_class': 20}, 'table_sha256': None, 'pretrain_max_images': 512, 'size': 32},
        },
    ),
}

def _resolved(c)->dict:
    "What a configuration resolves to, in BEFORE's form (changes from the presets)."
    import dataclasses
    from modan_nb.learner import RECIPES, PRETRAIN_METHOD
    from modan_nb.transfer import TransferRecipe
    from modan_nb.config import ALL_METHODS
    pre = {}
    for m in PRETRAIN_METHOD:
        base, r = RECIPES[c.recipe](PRETRAIN_METHOD[m]).as_dict(), pretrain_recipe(m, c).as_dict()
        pre[m] = {f: x for f, x in r.items() if base[f] != x}
    t = json.loads(json.dumps(dataclasses.asdict(transfer_recipe(c))))
    tb = json.loads(json.dumps(dataclasses.asdict(TransferRecipe.authors() if c.recipe == 'authors' else TransferRecipe.paper())))
    per = {m: {f: x for f, x in json.loads(json.dumps(dataclasses.asdict(transfer_recipe(c).for_method(m)))).items() if t.get(f) != x and f != 'per_method'}
           for m in ALL_METHODS}
    return dict(pretrain=pre, transfer={f: x for f, x in t.items() if tb[f] != x}, per_method={m: x for m, x in per.items() if x}, network=network(c))

def test_grouped_configs_resolve_to_the_recipes_the_flat_ones_did():
    "Issue 20: configs/*.yaml, the demo and their demo-scale versions give the same PretrainRecipe, TransferRecipe, network and encoder keys as before the grouping."
    from modan_nb.config import demo_config
    cfgs = dict(paper=ExperimentConfig.from_yaml(CONFIGS/'paper.yaml', check_paths=False),
                authors=ExperimentConfig.from_yaml(CONFIGS/'authors.yaml', check_paths=False), demo=demo_config())
    cfgs.update(authors_demo=demo_scale(cfgs['authors']), paper_demo=demo_scale(cfgs['paper']))
    for k, c in cfgs.items():
        got, want = _resolved(c), {f: v for f, v in BEFORE[k].items() if f != 'encoder_key'}
        assert got == want, (k, got, want)
        if BEFORE[k]['encoder_key']:   # the demo's encoders cached before the grouping stay valid
            keys = {m: {f: x for f, x in encoder_key(m, c).items() if f != 'recipe'} for m in BEFORE[k]['encoder_key']}
            assert keys == BEFORE[k]['encoder_key'], k

def test_at_most_15_top_level_settings():
    import dataclasses
    assert len(dataclasses.fields(ExperimentConfig)) <= 15
