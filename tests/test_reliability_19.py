"Issue 19: results that were still silently wrong (torn rows, missing scores, empty YAML, BOM CSVs, odd images, bad tables) and unclear messages."
import os, re, io, json, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from modan_nb import transfer, stores
from modan_nb.transfer import run_transfer, UNIT_COLS, TransferTask

torch.set_num_threads(1)

from _transfer_helpers import TinyEncoder, toy_task as _toy_task

def encoders(): torch.manual_seed(0); return {'A': TinyEncoder(4)}

def toy_task(n=24, size=8): return _toy_task(n, size)

DF, X = toy_task()
KW = dict(protocols=('sklearn',), n_folds=3, repeats=1, size=8, bs=8, device='cpu')

def run(out, **kw):
    redone = []
    auc, sc = run_transfer(encoders(), TransferTask(DF, 'toy', inputs=X), out_dir=out, callback=redone.append, **{**KW, **kw})
    return auc, sc, redone

def _sorted(d, cols): return d[cols].sort_values(cols).reset_index(drop=True)

def same(a, b, cols): pd.testing.assert_frame_equal(_sorted(a, cols), _sorted(b, cols), check_dtype=False)

# --- item 1: a torn row is found wherever the cut falls -------------------------------------------------------------

def test_auc_row_cut_at_a_field_boundary_with_newline_is_redone(tmp_path):
    "The issue's case: `...,0.5\\n` instead of `...,0.5625\\n` at the end of auc.csv; the unit is redone and the file repaired."
    ref, ref_sc, _ = run(tmp_path)
    f = tmp_path/'auc.csv'
    lines = f.read_text().split('\n')[:-1]
    last = lines[-1]
    auc_at = len(','.join(last.split(',')[:7]))   # the end of the `auc` field
    cut = last[:auc_at - 1]                       # e.g. 0.5625 -> 0.562, then a newline: a row that looks whole
    f.write_text('\n'.join(lines[:-1] + [cut]) + '\n')
    auc, sc, redone = run(tmp_path)
    assert len(redone) == 1
    same(auc, ref, UNIT_COLS + ['auc']); same(sc, ref_sc, UNIT_COLS + ['case', 'score'])
    assert f.read_text().count('\n') == len(ref) + 1

def test_any_cut_of_the_last_row_is_dropped(tmp_path):
    "Every cut position of the last row of both files, with or without a newline after it: the unit is not done, the file repaired."
    ref, _, _ = run(tmp_path)
    whole = {n: (tmp_path/n).read_text() for n in ('auc.csv', 'scores.csv')}
    for name, text in whole.items():
        start = text[:-1].rfind('\n') + 1
        for end in range(start + 1, len(text) - 1):
            for nl in ('', '\n'):
                for n, t in whole.items(): (tmp_path/n).write_text(t)
                (tmp_path/name).write_text(text[:end] + nl)
                st = stores._Store(tmp_path)
                assert len(st.done) == len(ref) - 1, (name, text[start:end] + nl)
                assert stores._complete_text(tmp_path/name)[1] is False   # repaired on disk

def test_bad_row_not_last_is_an_error(tmp_path):
    run(tmp_path)
    f = tmp_path/'auc.csv'
    lines = f.read_text().split('\n')
    lines[1] = lines[1].replace(',sklearn,', ',sklearm,')
    f.write_text('\n'.join(lines))
    with pytest.raises(ValueError, match=re.escape(f"{f}, line 2")): run(tmp_path)

def test_older_results_files_stay_readable(tmp_path):
    "A results folder of a version without the `crc` column: nothing redone, the files given checksums."
    ref, ref_sc, _ = run(tmp_path)
    for name in ('auc.csv', 'scores.csv'):
        d = pd.read_csv(tmp_path/name, dtype=str).drop(columns='crc')
        (tmp_path/name).write_text(d.to_csv(index=False))
    auc, sc, redone = run(tmp_path)
    assert redone == [] and len(sc) == len(ref_sc)
    assert (tmp_path/'auc.csv').read_text().split('\n')[0].endswith(',crc')

# --- item 2: a unit is done only with all its score rows ---------------------------------------------------------

def test_deleted_scores_are_redone(tmp_path):
    ref, ref_sc, _ = run(tmp_path)
    (tmp_path/'scores.csv').unlink()
    auc, sc, redone = run(tmp_path)
    assert len(redone) == len(ref) and len(sc) == len(ref_sc)
    same(sc, ref_sc, UNIT_COLS + ['case', 'score'])

def test_short_scores_are_redone(tmp_path):
    "63 of 64 scores: the unit of the missing row is redone, the others kept."
    ref, ref_sc, _ = run(tmp_path)
    f = tmp_path/'scores.csv'
    lines = f.read_text().split('\n')[:-1]
    f.write_text('\n'.join(lines[:-1]) + '\n')       # the last score row gone, whole lines left
    auc, sc, redone = run(tmp_path)
    assert len(redone) == 1 and len(sc) == len(ref_sc) and len(auc) == len(ref)
    same(sc, ref_sc, UNIT_COLS + ['case', 'score']); same(auc, ref, UNIT_COLS + ['auc'])

# --- item 3 and the YAML bullets -----------------------------------------------------------------------------------

from modan_nb.config import ExperimentConfig, demo_config
from modan_nb.runner import _check_run_dir
from modan_nb.cli import load_run_config

def test_empty_yaml_is_refused(tmp_path):
    f = tmp_path/'empty.yaml'; f.write_text('# nothing here\n')
    with pytest.raises(ValueError, match=re.escape(str(f)) + '.*empty'): load_run_config(f, demo=True)

@pytest.mark.parametrize('key,val', [('transfer.n_folds', '"nan"'), ('seed', '"inf"'), ('transfer.repeats', '"-inf"')])
def test_quoted_nan_inf_name_key_and_file(tmp_path, key, val):
    g, _, k = key.rpartition('.')
    f = tmp_path/'c.yaml'; f.write_text(f'name: x\n{g}: {{{k}: {val}}}\n' if g else f'name: x\n{key}: {val}\n')
    with pytest.raises(ValueError, match=re.escape(str(f)) + f'.*{key}.*not an integer'): ExperimentConfig.from_yaml(f, check_paths=False)

@pytest.mark.parametrize('text', ['', 'name: demo\nn_fo', 'name: [unclosed\n'])
def test_cut_run_config_says_so(tmp_path, text):
    run = tmp_path/'run'; (run/'transfer'/'t').mkdir(parents=True); (run/'transfer'/'t'/'auc.csv').write_text('x\n')
    (run/'config.yaml').write_text(text)
    with pytest.raises(ValueError, match=re.escape(str(run/'config.yaml')) + '.*(empty|cut)') as e: _check_run_dir(demo_config(), run)
    assert 'other settings' not in str(e.value)

def test_truncated_vocab_json_names_the_file(tmp_path):
    from modan_nb.metadata import MetadataEncoder
    f = tmp_path/'vocab.json'; f.write_text('{"fields": ["modality"], "vocab": {"modality": ["CT", "M')
    with pytest.raises(ValueError, match=re.escape(str(f)) + '.*not valid JSON'): MetadataEncoder.load(f)

def test_bad_recipe_yaml_names_the_file(tmp_path):
    from modan_nb.learner import recipe_from_file
    f = tmp_path/'r.yaml'; f.write_text('temperature: [0.1\n')
    with pytest.raises(ValueError, match=re.escape(str(f)) + '.*not valid YAML'): recipe_from_file('modan', f)

# --- item 4: a byte-order mark -------------------------------------------------------------------------------------

from PIL import Image

def _png(path, arr=None, seed=0, size=16, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8) if arr is None else arr
    Image.fromarray(a, mode=mode).save(path) if mode else Image.fromarray(a).save(path)
    return path

def test_ddti_csv_with_bom_keeps_its_first_row(tmp_path):
    from modan_nb.tasks import read_ddti
    for n in ['1_1', '2_1', '3_1', '4_1']: _png(tmp_path/'cropped'/f'{n}.png', seed=int(n[0]))
    (tmp_path/'diagnosis.csv').write_bytes('\ufeff1_1,4a,1\n2_1,3,0\n3_1,4b,1\n4_1,2,0\n'.encode('utf-8'))
    with warnings.catch_warnings(): warnings.simplefilter('error'); d = read_ddti(tmp_path)
    assert len(d) == 4 and d.label.tolist() == [1, 0, 1, 0]

def test_pretrain_table_with_bom(tmp_path):
    from modan_nb.data import read_pretrain_table
    for i in range(2): _png(tmp_path/f'{i}.png', seed=i)
    (tmp_path/'t.csv').write_bytes('\ufeffpath,modality,anatomy,label\n0.png,CT,knee,a\n1.png,MR,knee,b\n'.encode())
    d = read_pretrain_table(tmp_path/'t.csv')
    d = d[0] if isinstance(d, tuple) else d
    assert 'path' in d.columns and len(d) == 2

# --- item 5 and the image bullets ----------------------------------------------------------------------------------

from modan_nb.data import load_image, load_volume, BadImageError

def test_constant_16bit_image_says_so(tmp_path):
    f = tmp_path/'c.png'; Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(f)
    with pytest.warns(UserWarning, match=re.escape(str(f)) + '.*constant'): a = load_image(f)
    assert a.shape == (8, 8)

def test_transparent_rgba_is_refused(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8); a[..., 0] = 200; a[..., 3] = 255; a[:4, :, 3] = 0
    f = tmp_path/'t.png'; Image.fromarray(a, 'RGBA').save(f)
    with pytest.raises(BadImageError, match=re.escape(str(f)) + '.*transparent'): load_image(f)
    a[..., 3] = 255; Image.fromarray(a, 'RGBA').save(f)
    assert load_image(f).shape == (8, 8)                  # opaque RGBA: its luminance, as before

def test_nan_voxels_are_refused(tmp_path):
    v = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32); v[1, 2, 3] = np.nan
    f = tmp_path/'v.npy'; np.save(f, v)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(BadImageError, match=re.escape(str(f)) + '.*NaN'): load_volume(f)

def test_directory_as_image_says_directory(tmp_path):
    (tmp_path/'d.png').mkdir()
    with pytest.raises((BadImageError, IsADirectoryError, FileNotFoundError), match='is a directory'): load_image(tmp_path/'d.png')

def test_dicom_under_png_name_is_read(tmp_path):
    pydicom = pytest.importorskip('pydicom')
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset(); meta.TransferSyntaxUID = ExplicitVRLittleEndian; meta.MediaStorageSOPClassUID = generate_uid(); meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path/'x.dcm'), {}, file_meta=meta, preamble=b'\0'*128)
    a = (np.arange(64, dtype=np.uint16).reshape(8, 8)*10)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PixelData = 16, 16, 15, 0, a.tobytes()
    f = tmp_path/'x.png'; ds.save_as(f, enforce_file_format=True)
    b = load_image(f)
    assert b.shape == (8, 8) and b.max() == 255 and b.min() == 0

# --- numpy scalars, n_views=1 -------------------------------------------------------------------------------------

def test_numpy_scalars_are_numbers():
    from modan_nb.learner import get_recipe, make_loss
    from modan_nb.losses import JaccardSupConLoss, NTXentLoss, SupConLoss
    from modan_nb.transfer import TransferRecipe
    f = np.float32
    r = get_recipe('modan', temperature=f(0.07), tau=f(0.5), lr=f(0.1), epochs=np.int64(3))
    json.dumps(r.as_dict())                                  # stored as plain numbers (checkpoints hold them as JSON)
    JaccardSupConLoss(temperature=f(.07), threshold=f(.5)); NTXentLoss(temperature=f(.07)); SupConLoss(temperature=f(.07))
    make_loss('modan', f(.07), f(.5))
    t = TransferRecipe(lr=f(1e-3), valid_frac=f(.2), epochs=np.int64(2))
    json.dumps(t.settings())

def test_n_views_one_refused_only_for_simclr():
    from modan_nb.learner import get_recipe, make_loss
    with pytest.raises(ValueError, match='simclr.*n_views'): get_recipe('simclr', n_views=1)
    for m in ('modan', 'supcon'):
        get_recipe(m, n_views=1)
        torch.manual_seed(0)
        z = torch.randn(8, 16, requires_grad=True)              # (V*B, D) with V = 1: one view of 8 images
        y = torch.tensor([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 1, 0]]).float()
        target = y if m == 'modan' else torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
        loss = make_loss(m, 0.1, 0.5 if m == 'modan' else None, n_views=1)(z, target)
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0 and z.grad.abs().sum() > 0, m

# --- item 6 and the table bullets ----------------------------------------------------------------------------------

def test_one_class_task_table_has_no_folds():
    from modan_nb.tasks import make_folds
    df = pd.DataFrame(dict(path=[f'{i}.png' for i in range(10)], label=1, group=[f'p{i}' for i in range(10)]))
    with pytest.raises(ValueError, match='one class.*label 1.*10 rows'): make_folds(df, n_splits=2, duplicates='keep')

def _table(tmp_path, rows):
    for i in range(4): _png(tmp_path/f'{i}.png', seed=i)
    t = pd.DataFrame(rows, columns=['path', 'modality', 'anatomy', 'label'])
    t.to_csv(tmp_path/'t.csv', index=False); return tmp_path/'t.csv'

def test_same_path_with_conflicting_metadata_is_refused(tmp_path):
    from modan_nb.data import read_pretrain_table
    f = _table(tmp_path, [('0.png', 'CT', 'knee', 'a'), ('1.png', 'MR', 'knee', 'b'), ('0.png', 'MR', 'knee', 'b')])
    with pytest.raises(ValueError, match=r"0\.png.*rows \[0, 2\]"): read_pretrain_table(f)

def test_valid_pct_one_is_refused(tmp_path):
    from modan_nb.data import pretrain_dls
    f = _table(tmp_path, [(f'{i}.png', 'CT', 'knee', 'a') for i in range(4)])
    with pytest.raises(ValueError, match='valid_pct.*1.0'): pretrain_dls(f, size=8, bs=2, device='cpu', valid_pct=1.0)

def test_missing_path_in_pretraining_table_names_row_and_file(tmp_path):
    from modan_nb.learner import pretrain
    f = _table(tmp_path, [('0.png', 'CT', 'knee', 'a'), (None, 'MR', 'knee', 'b'), ('2.png', 'CT', 'knee', 'a'), ('3.png', 'MR', 'knee', 'b')])
    with pytest.raises(ValueError, match=re.escape(str(f)) + '.*row 1.*empty path'):
        pretrain('modan', f, epochs=1, bs=2, size=8, path=tmp_path/'run', device='cpu')

def test_skipped_dicom_files_warn(tmp_path):
    from modan_nb.metadata import read_dicom_metadata
    (tmp_path/'empty.dcm').write_bytes(b''); (tmp_path/'junk.dcm').write_bytes(b'not a dicom at all' * 20)
    with pytest.warns(UserWarning, match=r"skipped 2 .*empty\.dcm"): d = read_dicom_metadata(tmp_path, missing='skip')
    assert len(d) == 0 and len(d.attrs['skipped']) == 2
