"A configuration is checked when it is loaded (issue 13): types, ranges, reader options, paths; a corrected one keeps its encoders."
import json
from pathlib import Path
import pandas as pd
import pytest

from modan_nb import experiments as E
from modan_nb.synth import make_demo_data

def _yaml(tmp_path, text, name='c.yaml'):
    p = tmp_path/name; p.write_text(text); return p

def test_float_read_as_string_is_converted_at_load(tmp_path):
    cfg = E.ExperimentConfig.from_yaml(_yaml(tmp_path, 'name: x\nft_lr: 1e-4\n'))   # YAML 1.1: the string '1e-4'
    assert isinstance(cfg.ft_lr, float) and cfg.ft_lr == 1e-4

@pytest.mark.parametrize('text,message', [
    ('n_folds: five', "n_folds: 'five' is not an integer"),
    ('repeats: 2.5', "repeats: 2.5 is not an integer"),
    ('ft_lr: fast', "ft_lr: 'fast' is not a number"),
    ('ft_lr: -0.1', "ft_lr: -0.1 must be > 0"),
    ('ft_epochs: 0', "ft_epochs: 0 is below its minimum 1"),
    ('pretrain_bs: true', "pretrain_bs: True is not an integer"),
    ("fractions: [half]", "fractions: 'half' is not a number"),
    ('fractions: [1.5]', "fractions must lie in (0, 1]"),
    ('alternative: bigger', "alternative: 'bigger' is not one of"),
    ('correction: holmes', "correction: 'holmes' is not a statsmodels multipletests method"),
    ('ce_label: finding', "ce_label: 'finding' is not one of"),
    ('stem: resnet', "stem: 'resnet' is not one of ['paper', 'torchvision']"),
    ('recipe: mine', "recipe: 'mine' is not one of ['paper', 'authors']"),
    ('select: first', "select: 'first' is not one of ['best', 'last']"),
    ('probe_bn: frozen', "probe_bn: 'frozen' is not one of ['eval', 'train']"),
    ('pretrain_head: mlp3', "pretrain_head: 'mlp3' is not one of"),
    ('pretrain_schedule: linear', "pretrain_schedule: 'linear' is not one of"),
    ('imagenet_conv1: copy', "imagenet_conv1: 'copy' is not one of ['fold', 'random']"),
    ('crop_scale: [0.5, 0.2]', "crop_scale: [0.5, 0.2] must be [lo, hi]"),
    ('crop_scale: 0.2', "crop_scale: 0.2 is not a pair"),
    ('normalize: sometimes', "normalize: expected true, false or null, got 'sometimes'"),
    ('valid_frac: 1.0', "valid_frac: 1.0 must be in [0, 1)"),
    ('probe_lr: 0', "probe_lr: 0.0 must be > 0"),
    ('duplicates: merge', "duplicates: 'merge' is not one of ['error', 'drop', 'keep']"),
    ('pretrain_overrides: {SimCLR: {learning_rate: 0.5}}', "pretrain_overrides: SimCLR: unknown setting(s) ['learning_rate']"),
    ('pretrain_overrides: {MoCo: {lr: 0.5}}', "pretrain_overrides: 'MoCo' is not a pretrained method"),
    ('pretrain_overrides: {SimCLR: {opt: lamb}}', "the pretraining recipe of SimCLR"),
    ('umap: maybe', "umap: expected true or false, got 'maybe'"),
    ('methods: [Scratch, 3]', "methods: expected a list of names"),
])
def test_bad_values_are_refused_at_load_naming_key_and_value(tmp_path, text, message):
    p = _yaml(tmp_path, f'name: x\n{text}\n')
    with pytest.raises(ValueError) as e: E.ExperimentConfig.from_yaml(p)
    assert message in str(e.value) and str(p) in str(e.value), str(e.value)

def test_a_single_method_is_not_split_into_letters(tmp_path):
    cfg = E.ExperimentConfig.from_yaml(_yaml(tmp_path, 'name: x\nmethods: Scratch\nprotocols: sklearn\n'))
    assert cfg.methods == ['Scratch'] and cfg.protocols == ['sklearn']

def test_reader_options_are_checked_against_the_reader(tmp_path):
    p = _yaml(tmp_path, f'name: x\ntasks:\n  breast: {{reader: busi, root: {tmp_path}, plane: sagittal}}\n')
    with pytest.raises(ValueError, match=r"task 'breast': reader 'busi' \(read_busi\) has no option\(s\) \['plane'\]"):
        E.ExperimentConfig.from_yaml(p)
    ok = _yaml(tmp_path, f'name: x\ntasks:\n  breast: {{reader: busi, root: {tmp_path}, include_normal: false}}\n', 'ok.yaml')
    assert E.ExperimentConfig.from_yaml(ok).tasks['breast']['include_normal'] is False

def test_every_data_root_must_exist_at_load(tmp_path):
    p = _yaml(tmp_path, f'name: x\ntasks:\n  acl: {{reader: mrnet, root: {tmp_path}/MRNet-v1.0}}\n')
    with pytest.raises(FileNotFoundError, match=r"task 'acl': root: '.*MRNet-v1.0' does not exist"): E.ExperimentConfig.from_yaml(p)
    p = _yaml(tmp_path, f'name: x\npretrain: {tmp_path}/minirin.csv\n', 'pre.yaml')
    with pytest.raises(FileNotFoundError, match=r"pretrain: '.*minirin.csv' does not exist"): E.ExperimentConfig.from_yaml(p)
    p = _yaml(tmp_path, f'name: x\npretrain_root: {tmp_path}/radiology_ai\n', 'root.yaml')
    with pytest.raises(FileNotFoundError, match=r"pretrain_root: '.*radiology_ai' is not a folder"): E.ExperimentConfig.from_yaml(p)
    # the paper's configuration names the user's folders: it loads when asked not to check them
    paper = Path(__file__).resolve().parents[1]/'configs'/'paper.yaml'
    assert E.ExperimentConfig.from_yaml(paper, check_paths=False).ft_lr == 1e-4

def test_modan_run_stops_at_load_with_one_line(tmp_path, capsys):
    p = _yaml(tmp_path, 'name: x\nn_folds: five\n')
    with pytest.raises(SystemExit) as e: E.modan_run(str(p))
    assert "n_folds: 'five' is not an integer" in str(e.value.code)

@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    return make_demo_data(tmp_path_factory.mktemp('synth'), n_per_class=4, mrnet=(20, 8), busi=48, ddti=20, seed=0)

def _tiny(synth, name, **kw):
    d = dict(name=name, methods=['ModAn-MulSupCon', 'Scratch'], protocols=['sklearn'], tasks={'breast': E.synthetic_tasks(synth)['breast']},
             pretrain=str(synth['synthrin']), n_folds=2, repeats=2, pretrain_epochs=1, pretrain_bs=32, pretrain_max_images=None,
             pretrain_size=16, task_size=16, ft_epochs=1, umap=False)
    d.update(kw)
    return E.demo_config(**d)

def _fingerprints(run):
    return {p.name: json.loads(p.read_text())['file_sha256'] for p in sorted((run/'encoders').glob('*.json')) if not p.name.endswith('.vocab.json')}

def test_correcting_a_setting_keeps_the_encoders_still_valid(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    quiet = dict(progress=False, log=lambda *a: None)
    E.run_experiment(_tiny(synth, 'fix'), **quiet)
    run = tmp_path/'runs'/'fix'
    before = _fingerprints(run)
    assert set(before) == {'modan_mulsupcon.json', 'scratch.json'}
    with pytest.raises(ValueError, match='--redo'): E.run_experiment(_tiny(synth, 'fix', ft_lr=0.01), **quiet)
    import modan_nb.learner
    def no_pretraining(*a, **k): raise AssertionError('an encoder still valid for the new settings was pretrained again')
    monkeypatch.setattr(modan_nb.learner, 'pretrain', no_pretraining)
    res = E.run_experiment(_tiny(synth, 'fix', ft_lr=0.01), redo=True, **quiet)   # a transfer setting: every encoder is kept
    assert _fingerprints(run) == before and len(res['aucs']) == 2*2*2
    monkeypatch.undo(); monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    E.run_experiment(_tiny(synth, 'fix', ft_lr=0.01, pretrain_epochs=2), redo=True, **quiet)   # a pretraining setting: only those encoders
    after = _fingerprints(run)
    assert after['scratch.json'] == before['scratch.json'] and after['modan_mulsupcon.json'] != before['modan_mulsupcon.json']

def test_ce_baseline_without_labels_needs_ce_label_pair(synth, tmp_path, monkeypatch):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    table = pd.read_csv(synth['synthrin'])
    csv = Path(synth['synthrin']).parent/'no_label.csv'
    table.drop(columns='label').to_csv(csv, index=False)
    kw = dict(methods=['165-class'], pretrain=str(csv), pretrain_bs=16)
    with pytest.raises(ValueError, match=r"no 'label' column.*ce_label: pair"): E.run_experiment(_tiny(synth, 'ce', **kw), progress=False, log=lambda *a: None)
    res = E.run_experiment(_tiny(synth, 'ce2', ce_label='pair', **kw), progress=False, log=lambda *a: None)
    report = res['report'].read_text()
    n_pairs = table.groupby(['modality', 'anatomy']).ngroups
    assert f"classified the (modality, anatomy) pair: {n_pairs} classes, class `modality/anatomy`" in report
    assert "`ce_label: pair`" in report
    import json
    info = json.loads((tmp_path/'runs'/'ce2'/'encoders'/'165_class.json').read_text())['info']
    assert info['ce_class'] == 'modality/anatomy'   # pretrain(..., label_from='pair') was used: the learner's own record
