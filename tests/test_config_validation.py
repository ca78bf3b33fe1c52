"A configuration is checked when it is loaded (issue 13): types, ranges, reader options, paths; a corrected one keeps its encoders."
import json
from pathlib import Path
import pandas as pd
import pytest

from modan_nb.cli import modan_run
from modan_nb.config import ExperimentConfig, demo_config, synthetic_tasks
from modan_nb.runner import run_experiment
from modan_nb.synth import make_demo_data

def _yaml(tmp_path, text, name='c.yaml'):
    p = tmp_path/name; p.write_text(text); return p

def test_float_read_as_string_is_converted_at_load(tmp_path):
    cfg = ExperimentConfig.from_yaml(_yaml(tmp_path, 'name: x\ntransfer: {lr: 1e-4}\npretrain: {crop_scale: [1e-1, 1]}\n'))   # YAML 1.1: the string '1e-4'
    assert isinstance(cfg.transfer.lr, float) and cfg.transfer.lr == 1e-4 and cfg.pretrain.crop_scale == [0.1, 1.0]

@pytest.mark.parametrize('text,message', [
    ('transfer: {n_folds: five}', "transfer.n_folds: 'five' is not an integer"),
    ('transfer: {repeats: 2.5}', "transfer.repeats: 2.5 is not an integer"),
    ('transfer: {lr: fast}', "transfer.lr: 'fast' is not a number"),
    ('transfer: {lr: -0.1}', "transfer.lr: -0.1 is refused by TransferRecipe: TransferRecipe.lr must be a number > 0"),
    ('transfer: {epochs: 0}', "transfer.epochs: 0 is refused by TransferRecipe: TransferRecipe.epochs must be an integer >= 1"),
    ('transfer: {n_folds: 1}', "transfer.n_folds: 1 is below its minimum 2"),
    ('pretrain: {bs: true}', "pretrain.bs: True is not an integer"),
    ('pretrain: {bs: 1}', "pretrain.bs: 1 is refused by PretrainRecipe"),
    ("transfer: {fractions: [half]}", "transfer.fractions: 'half' is not a number"),
    ('transfer: {fractions: [1.5]}', "transfer.fractions: [1.5] is refused by TransferRecipe: TransferRecipe.fractions must be numbers in (0, 1]"),
    ('stats: {alternative: bigger}', "stats.alternative: 'bigger' is not one of"),
    ('stats: {correction: holmes}', "stats.correction: 'holmes' is not a statsmodels multipletests method"),
    ('pretrain: {ce_label: finding}', "pretrain.ce_label: 'finding' is not one of"),
    ('pretrain: {stem: resnet}', "pretrain.stem: 'resnet' is not one of ['paper', 'torchvision']"),
    ('pretrain: {arch: vgg}', "pretrain.arch: 'vgg' is not one of"),
    ('recipe: mine', "recipe: 'mine' is not one of ['paper', 'authors']"),
    ('transfer: {select: first}', "transfer.select: 'first' is refused by TransferRecipe: TransferRecipe.select must be one of ('best', 'last')"),
    ('transfer: {probe_bn: frozen}', "transfer.probe_bn: 'frozen' is refused by TransferRecipe: TransferRecipe.probe_bn must be one of ('eval', 'train')"),
    ('transfer: {head: mlp}', "transfer.head: 'mlp' is refused by TransferRecipe"),
    ('pretrain: {head: mlp3}', "pretrain.head: 'mlp3' is not one of"),
    ('pretrain: {schedule: linear}', "pretrain.schedule: 'linear' is not one of"),
    ('pretrain: {conv1: copy}', "pretrain.conv1: 'copy' is refused by PretrainRecipe"),
    ('pretrain: {crop_scale: [0.5, 0.2]}', "pretrain.crop_scale: [0.5, 0.2] is refused by PretrainRecipe"),
    ('pretrain: {crop_scale: 0.2}', "pretrain.crop_scale: 0.2 is not a list of numbers"),
    ('pretrain: {normalize: sometimes}', "pretrain.normalize: expected true, false or null, got 'sometimes'"),
    ('transfer: {valid_frac: 1.0}', "transfer.valid_frac: 1.0 is refused by TransferRecipe: TransferRecipe.valid_frac must be in [0, 1)"),
    ('transfer: {probe_lr: 0}', "transfer.probe_lr: 0.0 is refused by TransferRecipe"),
    ('data: {duplicates: merge}', "data.duplicates: 'merge' is not one of ['error', 'drop', 'keep']"),
    ('data: {max_images: 0}', "data.max_images: 0 is below its minimum 1"),
    ('pretrain: {overrides: {SimCLR: {learning_rate: 0.5}}}', "pretrain.overrides: SimCLR: unknown setting(s) ['learning_rate']"),
    ('pretrain: {overrides: {MoCo: {lr: 0.5}}}', "pretrain.overrides: 'MoCo' is not a pretrained method"),
    ('pretrain: {overrides: {SimCLR: {opt: lamb}}}', "the pretraining recipe of SimCLR"),
    ('transfer: {overrides: {SimCLR: {size: 32}}}', "cannot differ between methods"),
    ('embedding: {umap: maybe}', "embedding.umap: expected true or false, got 'maybe'"),
    ('embedding: {max_images: 10}', "embedding.max_images: 10 is below its minimum 20"),
    ('transfer: {reinit: sometimes}', "transfer.reinit: expected true or false, got 'sometimes'"),
    ('methods: [Scratch, 3]', "methods: expected a list of names"),
    ('pretrain: {epochs: 3, learning_rate: 1}', "pretrain: unknown setting(s) ['learning_rate']; known: ['arch'"),
    ('transfer: 3', "transfer: expected a mapping of settings, got 3"),
])
def test_bad_values_are_refused_at_load_naming_key_and_value(tmp_path, text, message):
    p = _yaml(tmp_path, f'name: x\n{text}\n')
    with pytest.raises(ValueError) as e: ExperimentConfig.from_yaml(p)
    assert message in str(e.value) and str(p) in str(e.value), str(e.value)

def test_a_single_method_is_not_split_into_letters(tmp_path):
    cfg = ExperimentConfig.from_yaml(_yaml(tmp_path, 'name: x\nmethods: Scratch\nprotocols: sklearn\n'))
    assert cfg.methods == ['Scratch'] and cfg.protocols == ['sklearn']

def test_reader_options_are_checked_against_the_reader(tmp_path):
    p = _yaml(tmp_path, f'name: x\ntasks:\n  breast: {{reader: busi, root: {tmp_path}, plane: sagittal}}\n')
    with pytest.raises(ValueError, match=r"task 'breast': reader 'busi' \(read_busi\) has no option\(s\) \['plane'\]"):
        ExperimentConfig.from_yaml(p)
    ok = _yaml(tmp_path, f'name: x\ntasks:\n  breast: {{reader: busi, root: {tmp_path}, include_normal: false}}\n', 'ok.yaml')
    assert ExperimentConfig.from_yaml(ok).tasks['breast']['include_normal'] is False

def test_every_data_root_must_exist_at_load(tmp_path):
    p = _yaml(tmp_path, f'name: x\ntasks:\n  acl: {{reader: mrnet, root: {tmp_path}/MRNet-v1.0}}\n')
    with pytest.raises(FileNotFoundError, match=r"task 'acl': root: '.*MRNet-v1.0' does not exist"): ExperimentConfig.from_yaml(p)
    p = _yaml(tmp_path, f'name: x\ndata: {{pretrain: {tmp_path}/minirin.csv}}\n', 'pre.yaml')
    with pytest.raises(FileNotFoundError, match=r"data.pretrain: '.*minirin.csv' does not exist"): ExperimentConfig.from_yaml(p)
    p = _yaml(tmp_path, f'name: x\ndata: {{root: {tmp_path}/radiology_ai}}\n', 'root.yaml')
    with pytest.raises(FileNotFoundError, match=r"data.root: '.*radiology_ai' is not a folder"): ExperimentConfig.from_yaml(p)
    # the paper's configuration names the user's folders: it loads when asked not to check them
    paper = Path(__file__).resolve().parents[1]/'configs'/'paper.yaml'
    assert ExperimentConfig.from_yaml(paper, check_paths=False).transfer.lr == 1e-4

def test_modan_run_stops_at_load_with_one_line(tmp_path, capsys):
    p = _yaml(tmp_path, 'name: x\ntransfer: {n_folds: five}\n')
    with pytest.raises(SystemExit) as e: modan_run(str(p))
    assert "transfer.n_folds: 'five' is not an integer" in str(e.value.code)

def test_old_flat_keys_get_one_error_naming_their_new_places(tmp_path):
    p = _yaml(tmp_path, 'name: x\npretrain: t.csv\nft_lr: 1e-4\nft_step: 5\npretrain_schedule: step\numap: false\ncorrection: none\nreinit: true\n')
    with pytest.raises(ValueError) as e: ExperimentConfig.from_yaml(p, check_paths=False)
    msg = str(e.value)
    assert str(p) in msg and msg.count('\n') == 0
    for old, new in (('pretrain', 'data.pretrain'), ('ft_lr', 'transfer.lr'), ('ft_step', 'transfer.step_size'), ('pretrain_schedule', 'pretrain.schedule'),
                     ('umap', 'embedding.umap'), ('correction', 'stats.correction'), ('reinit', 'transfer.reinit')):
        assert f'{old} -> {new}' in msg, msg
    with pytest.raises(ValueError, match=r'ft_epochs -> transfer.epochs, pretrain_bs -> pretrain.bs'): ExperimentConfig(ft_epochs=2, pretrain_bs=8)
    with pytest.raises(ValueError, match=r'ce_label -> pretrain.ce_label'): demo_config(ce_label='pair')
    from modan_nb.config import nest_old_keys, OLD_KEYS
    import yaml
    old = yaml.safe_load(p.read_text())
    cfg = ExperimentConfig.from_dict(nest_old_keys(old)).validate(check_paths=False)   # the conversion the message offers
    assert (cfg.data.pretrain, cfg.transfer.lr, cfg.pretrain.schedule, cfg.embedding.umap, cfg.stats.correction, cfg.transfer.reinit) == \
           ('t.csv', 1e-4, 'step', False, 'none', True)
    import dataclasses
    for old_key, place in OLD_KEYS.items():   # every place named exists
        g, f = place.split('.')
        assert f in {x.name for x in dataclasses.fields(type(getattr(ExperimentConfig(), g)))}, place

@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return make_demo_data(tmp_path_factory.mktemp('synth'), n_per_class=4, mrnet=(20, 8), busi=48, ddti=20, seed=0)

def _tiny(synth, name, **kw):
    d = dict(name=name, methods=['ModAn-MulSupCon', 'Scratch'], protocols=['sklearn'], tasks={'breast': synthetic_tasks(synth)['breast']},
             data=dict(pretrain=str(synth['synthrin']), max_images=None), pretrain=dict(epochs=1, bs=32, size=16),
             transfer=dict(n_folds=2, repeats=2, size=16, epochs=1), embedding=dict(umap=False))
    for k, v in kw.items(): d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v   # a group: field by field
    return demo_config(**d)

def _fingerprints(run):
    return {p.name: json.loads(p.read_text())['file_sha256'] for p in sorted((run/'encoders').glob('*.json')) if not p.name.endswith('.vocab.json')}

def test_correcting_a_setting_keeps_the_encoders_still_valid(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    quiet = dict(progress=False, log=lambda *a: None)
    run_experiment(_tiny(synth, 'fix'), **quiet)
    run = tmp_path/'runs'/'fix'
    before = _fingerprints(run)
    assert set(before) == {'modan_mulsupcon.json', 'scratch.json'}
    with pytest.raises(ValueError, match='--redo'): run_experiment(_tiny(synth, 'fix', transfer=dict(lr=0.01)), **quiet)
    import modan_nb.learner
    def no_pretraining(*a, **k): raise AssertionError('an encoder still valid for the new settings was pretrained again')
    monkeypatch.setattr(modan_nb.learner, 'pretrain', no_pretraining)
    res = run_experiment(_tiny(synth, 'fix', transfer=dict(lr=0.01)), redo=True, **quiet)   # a transfer setting: every encoder is kept
    assert _fingerprints(run) == before and len(res['aucs']) == 2*2*2
    monkeypatch.undo(); monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    run_experiment(_tiny(synth, 'fix', transfer=dict(lr=0.01), pretrain=dict(epochs=2)), redo=True, **quiet)   # a pretraining setting: only those encoders
    after = _fingerprints(run)
    assert after['scratch.json'] == before['scratch.json'] and after['modan_mulsupcon.json'] != before['modan_mulsupcon.json']

def test_ce_baseline_without_labels_needs_ce_label_pair(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    table = pd.read_csv(synth['synthrin'])
    csv = Path(synth['synthrin']).parent/'no_label.csv'
    table.drop(columns='label').to_csv(csv, index=False)
    kw = dict(methods=['165-class'], data=dict(pretrain=str(csv)))
    with pytest.raises(ValueError, match=r"no 'label' column.*ce_label: pair"): run_experiment(_tiny(synth, 'ce', pretrain=dict(bs=16), **kw), progress=False, log=lambda *a: None)
    res = run_experiment(_tiny(synth, 'ce2', pretrain=dict(bs=16, ce_label='pair'), **kw), progress=False, log=lambda *a: None)
    report = res['report'].read_text()
    n_pairs = table.groupby(['modality', 'anatomy']).ngroups
    assert f"classified the (modality, anatomy) pair: {n_pairs} classes, class `modality/anatomy`" in report
    assert "`pretrain.ce_label: pair`" in report
    import json
    info = json.loads((tmp_path/'runs'/'ce2'/'encoders'/'165_class.json').read_text())['info']
    assert info['ce_class'] == 'modality/anatomy'   # pretrain(..., label_from='pair') was used: the learner's own record

def test_a_run_folder_saved_with_the_flat_keys_keeps_its_results(tmp_path):
    "A run folder whose config.yaml predates the groups is read through `nest_old_keys`: the same settings are no change."
    import yaml
    from modan_nb.config import OLD_KEYS
    from modan_nb.runner import _check_run_dir
    cfg = demo_config()
    nested = cfg.to_dict()
    flat = {k: v for k, v in nested.items() if not isinstance(v, dict) or k == 'tasks'}
    for old, place in OLD_KEYS.items():
        g, f = place.split('.'); flat[old] = nested[g][f]
    flat['pretrain'] = nested['data']['pretrain']
    run = tmp_path/'run'; (run/'transfer'/'t').mkdir(parents=True); (run/'transfer'/'t'/'auc.csv').write_text('x\n')
    (run/'config.yaml').write_text(yaml.safe_dump(flat, sort_keys=False))
    _check_run_dir(cfg, run)                                            # no change: the results are kept
    assert (run/'transfer'/'t'/'auc.csv').exists() and 'transfer:' in (run/'config.yaml').read_text()
    flat['ft_lr'] = 0.5; (run/'config.yaml').write_text(yaml.safe_dump(flat, sort_keys=False))
    with pytest.raises(ValueError, match=r'transfer.lr: 0.5 -> 0.001'): _check_run_dir(cfg, run)
