"Your own task (notebook 07b): finetune / probe return fitted fastai Learners equal to run_transfer's units; predict scores PNG and DICOM files; keep_models, the k-NN protocol, target_names, settings-named run folders and exports at the end of a run."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from modan_nb.models import create_encoder
from modan_nb.transfer import run_transfer, safe_auc, BinaryClassifier, KNNProbe, UNIT_COLS, TransferTask
from modan_nb.finetune import finetune, probe, predict, read_task_table
from fastai.learner import Learner, load_learner

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
KW = dict(size=16, epochs=2, bs=8, lr=1e-3, n_folds=2, device='cpu')

@pytest.fixture(scope='module')
def task(tmp_path_factory):
    "24 PNGs of 12 patients, bright = positive; a CSV with relative paths."
    d = tmp_path_factory.mktemp('task'); rng = np.random.default_rng(0); rows = []
    for i in range(24):
        Image.fromarray((rng.random((20, 20))*150 + 90*(i % 2)).astype(np.uint8)).save(d/f'{i}.png')
        rows.append(dict(path=f'{i}.png', label=i % 2, group=f'p{i//2}'))
    pd.DataFrame(rows).to_csv(d/'task.csv', index=False)
    return d/'task.csv'

@pytest.fixture(scope='module')
def enc():
    torch.manual_seed(0); return create_encoder()

@pytest.mark.parametrize('fold,repeat,seed', [(0, 0, 0), (1, 1, 3)])
def test_finetune_auc_equals_run_transfer(task, enc, fold, repeat, seed):
    learn = finetune(enc, task, fold=fold, repeat=repeat, seed=seed, **KW)
    assert isinstance(learn, Learner)
    p, t = learn.get_preds()
    assert ((p >= 0) & (p <= 1)).all()   # probabilities of label 1
    aucs, scores = run_transfer({'m': enc}, TransferTask(read_task_table(task), 'task'), protocols=['finetune'], repeats=repeat + 1, seed=seed, **KW)
    row = aucs[(aucs.fold == fold) & (aucs.repeat == repeat)]
    assert safe_auc(t.numpy(), p.numpy()) == pytest.approx(row['auc'].item(), abs=1e-9)
    sc = scores[(scores.fold == fold) & (scores.repeat == repeat)]
    assert np.allclose(np.sort(sc['score'].to_numpy()), np.sort(p.numpy()), atol=1e-6)   # the very scores

def test_probes_equal_run_transfer(task, enc, tmp_path):
    for kind, extra in (('linear', {}), ('knn', dict(knn_k=5))):
        learn = probe(enc, task, kind=kind, fold=1, **KW, **extra)
        p, t = learn.get_preds()
        aucs, _ = run_transfer({'m': enc}, TransferTask(read_task_table(task), 'task'), protocols=[kind], repeats=1, **KW, **extra)
        assert safe_auc(t.numpy(), p.numpy()) == pytest.approx(aucs.query('fold == 1')['auc'].item(), abs=1e-6), kind
        learn.export(tmp_path/f'{kind}.pkl')   # a probe's Learner exports and loads back too
        back = load_learner(tmp_path/f'{kind}.pkl')
        f = [task.parent/'2.png', task.parent/'3.png']
        assert np.allclose(predict(back, f)['score'], predict(learn, f)['score'], atol=1e-6), kind

def test_whole_table_and_export(task, enc, tmp_path):
    learn = finetune(enc, task, **KW)   # fold=None: every row trains (the inner validation share chooses the epoch)
    assert len(learn.dls.train.y) + len(learn.dls.valid.y) == 24
    learn.export(tmp_path/'learn.pkl')
    back = load_learner(tmp_path/'learn.pkl')
    files = [task.parent/'0.png', task.parent/'1.png']
    a, b = predict(learn, files), predict(back, files)
    assert list(a.columns) == ['path', 'score'] and np.allclose(a['score'], b['score'], atol=1e-6)
    assert (tmp_path/'learn.pkl').stat().st_size < 100e6
    import matplotlib; matplotlib.use('Agg')
    with learn.no_bar(): learn.show_results(max_n=2)   # images titled with label and prediction

def test_predict_reads_dicom(task, enc, tmp_path):
    pydicom = pytest.importorskip('pydicom')
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    img = np.array(Image.open(task.parent/'1.png'))
    meta = FileMetaDataset(); meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    meta.MediaStorageSOPInstanceUID = generate_uid(); meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = img.shape; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated = ds.BitsStored = 8; ds.HighBit = 7; ds.PixelRepresentation = 0; ds.PixelData = img.tobytes()
    ds.save_as(tmp_path/'x.dcm', enforce_file_format=True) if 'enforce_file_format' in ds.save_as.__code__.co_varnames else ds.save_as(tmp_path/'x.dcm', write_like_original=False)
    learn = finetune(enc, task, **KW)
    out = predict(learn, [tmp_path/'x.dcm', task.parent/'1.png'])
    assert len(out) == 2 and out['score'].between(0, 1).all()
    with pytest.raises(FileNotFoundError, match='nope.dcm'): predict(learn, [tmp_path/'nope.dcm'])

def test_bad_task_tables(enc, tmp_path):
    with pytest.raises(ValueError, match="row 1 has 'yes'"): finetune(enc, pd.DataFrame(dict(path=['a', 'b'], label=[0, 'yes'])))
    with pytest.raises(KeyError, match='label'): finetune(enc, pd.DataFrame(dict(path=['a'])))
    with pytest.raises(FileNotFoundError, match='none.csv'): finetune(enc, tmp_path/'none.csv')

def test_keep_models_and_knn_protocol(task, enc):
    a, s, models = run_transfer({'m': enc}, TransferTask(read_task_table(task), 'task'), protocols=['finetune', 'linear', 'sklearn', 'knn'],
                                repeats=1, keep_models=True, knn_k=5, **KW)
    assert sorted(models) == sorted(tuple(r) for r in a[UNIT_COLS].itertuples(index=False))
    assert isinstance(models[('m', 'task', 'finetune', 1.0, 0, 0)], BinaryClassifier)
    assert isinstance(models[('m', 'task', 'knn', 1.0, 0, 0)], KNNProbe)
    assert hasattr(models[('m', 'task', 'sklearn', 1.0, 0, 0)], 'predict_proba')
    assert a[a.protocol == 'knn']['auc'].notna().all()
    assert len(run_transfer({'m': enc}, TransferTask(read_task_table(task), 'task'), protocols=['knn'], repeats=1, **KW)) == 2   # default: two values

def test_pretrain_dls_declares_target_names(tmp_path):
    from _pretrain_helpers import tiny_table
    from modan_nb.data import pretrain_dls
    from modan_nb.learner import TARGETS, target_index
    dls = pretrain_dls(tiny_table(tmp_path), size=16, bs=8, device='cpu')
    assert tuple(dls.target_names) == TARGETS and target_index(dls, 'y_pair') == 1
    assert len(dls.one_batch()) == 1 + len(dls.target_names)

def test_standalone_runs_name_their_settings_and_export(tmp_path, monkeypatch):
    from _pretrain_helpers import tiny_table
    from modan_nb.learner import modan_pretrain, settings_run_dir
    from modan_nb.core import runs_dir
    from modan_nb.models import load_encoder
    monkeypatch.setenv('MODAN_DATA', str(tmp_path/'data'))
    csv = tiny_table(tmp_path)
    kw = dict(epochs=1, bs=8, size=16, progress=False)
    a = modan_pretrain(csv, **kw, export=tmp_path/'exp')
    b = modan_pretrain(csv, **dict(kw, lr=0.1))
    assert Path(a.path) != Path(b.path) and Path(a.path).parent == Path(b.path).parent == runs_dir()
    assert Path(a.path).name.startswith('modan-') and not (runs_dir()/'modan').exists()
    assert Path(a.path) == settings_run_dir('modan', csv, size=16, epochs=1, bs=8)
    enc, meta, info = load_encoder(tmp_path/'exp')
    assert meta is not None and info['method'] == 'modan' and info['epochs'] == 1
    cfg = json.loads((tmp_path/'exp'/'config.json').read_text())
    assert cfg['image_size'] == 16 and cfg['pretraining_table']['file'] == 'metadata.csv'

def test_cli_export(tmp_path):
    from _pretrain_helpers import tiny_table
    csv = tiny_table(tmp_path)
    env = dict(os.environ, MODAN_DATA=str(tmp_path/'data'), PYTHONPATH=str(ROOT), MODAN_DEVICE='cpu', OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'modan_nb.learner', '--data', str(csv), '--epochs', '1', '--bs', '8', '--size', '16',
                        '--export', str(tmp_path/'exp')], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'encoder exported to' in r.stdout
    assert sorted(p.name for p in (tmp_path/'exp').iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    runs = list((tmp_path/'data'/'runs').iterdir())
    assert len(runs) == 1 and runs[0].name.startswith('modan-')

def test_experiment_config_export_key():
    from modan_nb.config import ExperimentConfig
    import dataclasses
    assert [f.name for f in dataclasses.fields(ExperimentConfig)][-1] == 'export'
    assert ExperimentConfig(export=True).validate(check_paths=False).export is True
    with pytest.raises(ValueError, match='export: expected true or false'): ExperimentConfig(export='yes').validate(check_paths=False)

def test_modan_run_exports_each_encoder(tmp_path):
    from modan_nb.config import ExperimentConfig
    from modan_nb.runner import export_encoders
    from modan_nb.models import save_encoder, load_encoder
    csv = tmp_path/'meta.csv'; pd.DataFrame(dict(path=['a.png'], modality=['CT'], anatomy=['brain'])).to_csv(csv, index=False)
    cfg = ExperimentConfig(name='t', data=dict(pretrain=str(csv)), export=True, pretrain=dict(size=32))
    encs = {'ModAn-MulSupCon': save_encoder(tmp_path/'m.pth', create_encoder(), method='modan', epochs=1),
            'Scratch': save_encoder(tmp_path/'s.pth', create_encoder())}
    aucs = pd.DataFrame(dict(method=['ModAn-MulSupCon']*2, task=['breast']*2, protocol=['finetune']*2, fraction=[1.]*2, auc=[0.7, 0.8]))
    out = export_encoders(cfg, tmp_path/'run', encs, aucs, log=lambda *a: None)
    assert sorted(p.name for p in (tmp_path/'run'/'export').iterdir()) == ['modan_mulsupcon', 'scratch']
    c = json.loads((out['ModAn-MulSupCon']/'config.json').read_text())
    assert c['pretraining_table']['file'] == 'meta.csv' and c['image_size'] == 32 and c['evaluation'][0]['mean AUC'] == pytest.approx(0.75)
    assert '0.75' in (out['ModAn-MulSupCon']/'README.md').read_text()
    assert json.loads((out['Scratch']/'config.json').read_text())['pretraining_table'] is None
    load_encoder(out['Scratch'])

def test_run_experiment_with_knn_and_export(tmp_path, monkeypatch):
    "A tiny study (Scratch only: no pretraining) with the k-NN protocol and `export: true` runs end to end."
    monkeypatch.setenv('MODAN_DATA', str(tmp_path))
    from modan_nb.synth import make_demo_data
    from modan_nb.config import ExperimentConfig
    from modan_nb.runner import run_experiment
    paths = make_demo_data(tmp_path, seed=0, workers=0, size=32, n_per_class=2, mrnet=(4, 2), busi=30, ddti=6)
    cfg = ExperimentConfig(name='knn', data=dict(pretrain=str(paths['synthrin'])), methods=['Scratch'], protocols=['knn', 'sklearn'],
                           tasks={'breast': dict(reader='busi', root=str(paths['busi']))}, transfer=dict(n_folds=2, repeats=2, size=32),
                           pretrain=dict(size=32), embedding=dict(umap=False), export=True)
    res = run_experiment(cfg, progress=False, log=lambda *a: None)
    assert set(res['aucs']['protocol']) == {'knn', 'sklearn'}
    ev = json.loads((res['exports']['Scratch']/'config.json').read_text())['evaluation']
    assert {e['protocol'] for e in ev} == {'knn', 'sklearn'}
    with pytest.raises(ValueError, match='unknown protocol'): ExperimentConfig(protocols=['knnn']).validate(check_paths=False)
