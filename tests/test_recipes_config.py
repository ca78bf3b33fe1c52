"The two named recipes as configurations: `configs/paper.yaml` and `configs/authors.yaml` load with the expected values, and both run end to end at (shrunk) demo scale on SynthRIN with their recipe reaching pretraining and transfer."
import json
from pathlib import Path
import pytest

from modan_nb import experiments as E
from modan_nb.models import load_encoder

CONFIGS = Path(__file__).resolve().parents[1]/'configs'

def test_authors_yaml_holds_what_the_authors_scripts_ran():
    c = E.ExperimentConfig.from_yaml(CONFIGS/'authors.yaml', check_paths=False)
    assert (c.recipe, c.stem, c.normalize, c.crop_scale, c.imagenet_conv1) == ('authors', 'torchvision', False, [0.08, 1.0], 'random')
    assert (c.alternative, c.select, c.valid_frac, c.probe_lr, c.probe_bn, c.ft_head, c.probe_head, c.task_normalize) == \
           ('greater', 'last', 0.0, 1e-3, 'train', 'features_as_logits', 'two_logit', 'none')
    modan, simclr, ce = (E.pretrain_recipe(m, c) for m in ('ModAn-MulSupCon', 'SimCLR', '165-class'))
    assert (modan.head, modan.opt, modan.lr, modan.mom, modan.wd, modan.schedule, modan.warmup_epochs, modan.milestones, modan.epochs) == \
           ('fc1000', 'sgd', 0.05, 0.9, 1e-4, 'step', 3, (700, 800, 900), 200)
    assert (simclr.head, simclr.temperature, simclr.schedule, simclr.epochs, simclr.blur_p, simclr.lr) == ('mlp_nobn', 0.1, 'cosine_epoch', 200, 1.0, 0.05)
    assert (ce.weights, ce.conv1, ce.bs, ce.augment, ce.epochs) == ('imagenet', 'random', 32, False, 200)
    assert all(r.stem == 'torchvision' and not r.normalize and r.crop_scale == (0.08, 1.) for r in (modan, simclr, ce))
    t = E.transfer_recipe(c)
    assert (t.lr, t.step_size, t.gamma, t.epochs, t.bs, t.select, t.valid_frac, t.probe_lr, t.probe_bn) == (1e-4, 5, 0.1, 10, 32, 'last', 0., 1e-3, 'train')
    assert E.network(c) == dict(arch='resnet18', stem='torchvision', normalize=False, conv1='random')

def test_paper_yaml_is_the_papers_text_with_radimagenets_tables():
    c = E.ExperimentConfig.from_yaml(CONFIGS/'paper.yaml', check_paths=False)
    assert (c.recipe, c.stem, c.normalize, c.alternative, c.select, c.pretrain_epochs, c.pretrain_bs) == ('paper', 'paper', True, 'two-sided', 'best', 1000, 256)
    assert c.tasks['acl'] == dict(reader='radimagenet', root='~/data/radimagenet_downstream', task='acl', agg='max')   # no fold: all five
    assert c.tasks['thyroid']['reader'] == 'radimagenet' and c.tasks['thyroid']['task'] == 'thyroid'
    assert E.pretrain_recipe('ModAn-MulSupCon', c).head == 'mlp' and E.transfer_recipe(c).select == 'best'

def test_defaults_are_the_papers_text():
    c = E.ExperimentConfig().validate(check_paths=False)
    assert E.pretrain_recipe('ModAn-MulSupCon', c).as_dict() == {**__import__('modan_nb.learner', fromlist=['x']).paper_recipe('modan').as_dict()}
    assert E.transfer_recipe(c).settings() == __import__('modan_nb.transfer', fromlist=['x']).TransferRecipe.paper(repeats=10).settings()

def test_pretraining_settings_are_in_the_encoder_key():
    c = E.ExperimentConfig().validate(check_paths=False)
    k = E.encoder_key('SimCLR', c)
    for change in (dict(stem='torchvision'), dict(pretrain_head='mlp_nobn'), dict(pretrain_schedule='step'), dict(crop_scale=[0.08, 1.]),
                   dict(normalize=False), dict(recipe='authors'), dict(pretrain_overrides={'SimCLR': {'lr': 0.5}})):
        assert E.encoder_key('SimCLR', E.ExperimentConfig(**change).validate(check_paths=False)) != k, change
    for change in (dict(select='last'), dict(probe_bn='train'), dict(alternative='greater'), dict(pretrain_overrides={'165-class': {'bs': 32}})):
        assert E.encoder_key('SimCLR', E.ExperimentConfig(**change).validate(check_paths=False)) == k, change   # not a pretraining setting of SimCLR
    assert E.encoder_key('ImageNet', E.ExperimentConfig(stem='paper').validate(False)) != E.encoder_key('ImageNet', E.ExperimentConfig(stem='torchvision').validate(False))

TINY = dict(synth=dict(n_per_class=3, mrnet=[12, 8], mrnet_slices=[2, 2], busi=32, ddti=40), pretrain_epochs=1, pretrain_bs=16,
            pretrain_size=16, task_size=16, ft_epochs=1, ft_bs=8, umap=False)

def _offline(*a, **k): raise FileNotFoundError("ImageNet weights for resnet18 are not available offline: (simulated)")

@pytest.mark.parametrize('name', ['authors', 'paper'])
def test_config_runs_at_demo_scale_with_its_recipe(name, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    monkeypatch.setattr('modan_nb.models.imagenet_state_dict', _offline)   # the same on every machine
    full = E.load_run_config(CONFIGS/f'{name}.yaml', demo=True)          # what `modan_run <file> --demo` runs
    assert (full.name, full.pretrain, full.tasks, full.n_folds, full.repeats) == (f'{name}_demo', None, {}, 2, 2)
    assert full.stem == ('torchvision' if name == 'authors' else 'paper') and full.recipe == name
    cfg = E.demo_scale(E.ExperimentConfig.from_yaml(CONFIGS/f'{name}.yaml', check_paths=False),
                       methods=['ModAn-MulSupCon', 'SimCLR', '165-class', 'ImageNet'], **TINY)
    res = E.run_experiment(cfg, progress=False, log=lambda *a: None)
    run = res['run']
    expected_not_run = {'ImageNet', '165-class'} if name == 'authors' else {'ImageNet'}   # the authors' 165-class starts from ImageNet
    assert set(res['not_run']) == expected_not_run
    stem = 'torchvision' if name == 'authors' else 'paper'
    heads = dict(authors=('fc1000', 'mlp_nobn'), paper=('mlp', 'mlp'))[name]
    schedules = dict(authors=('step', 'cosine_epoch'), paper=('cosine', 'cosine'))[name]
    for m, head, sched in zip(('ModAn-MulSupCon', 'SimCLR'), heads, schedules):
        rec = json.loads((run/'encoders'/f'{E.method_slug(m)}.json').read_text())
        assert (rec['info']['recipe'], rec['info']['stem'], rec['info']['head'], rec['info']['schedule']) == (name, stem, head, sched)
        assert rec['key']['recipe']['crop_scale'] == ([0.08, 1.0] if name == 'authors' else [0.2, 1.0])
        enc = load_encoder(run/'encoders'/f'{E.method_slug(m)}.pth')[0]
        assert enc.net.conv1.kernel_size == ((7, 7) if name == 'authors' else (3, 3))
    tc = json.loads((run/'transfer'/'breast'/'config.json').read_text())['breast']
    flat = json.dumps(tc)
    want = dict(authors=('"last"', '"train"', '"features_as_logits"', '"two_logit"'), paper=('"best"', '"eval"', '"linear"'))[name]
    assert all(w in flat for w in want), flat[:2000]
    report = res['report'].read_text()
    assert f"Preset `recipe: {name}`" in report and f"first layer `{stem}`" in report
    assert f"alternative={'greater' if name == 'authors' else 'two-sided'}" in report.replace("'", '')
    assert ('uncorrected' if name == 'authors' else 'Holm-corrected') in report
