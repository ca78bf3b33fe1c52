"Readers and DataLoaders on the real public data in ../shared/data (skipped where that folder is absent)."
import os, warnings
import numpy as np, pandas as pd, pytest, torch
from modan_nb.core import shared_data_dir
from modan_nb.data import pretrain_dls, load_image, read_pretrain_table, decode_images
from modan_nb.tasks import read_busi, read_ddti, make_folds, subsample_fraction, save_folds, load_folds, read_medmnist, task_tensor, read_busbra, read_kneeoa, TASK_COLUMNS, check_duplicates

SHARED = shared_data_dir()

def _need(*parts):
    if SHARED is None or not SHARED.joinpath(*parts).exists(): pytest.skip(f"shared data {'/'.join(parts)} not available")
    return SHARED.joinpath(*parts)

def test_busi_counts():
    root = _need('busi')
    b = read_busi(root)
    assert b.label.value_counts().to_dict() == {0: 570, 1: 210}
    assert read_busi(root, include_normal=False).label.value_counts().to_dict() == {0: 437, 1: 210}
    assert b.group.is_unique                                # BUSI has no patient ids: one group per image
    # benign (433) and malignant (145) are one file under both labels: refused, or both dropped on request
    with pytest.raises(ValueError, match=r"benign \(433\).*malignant \(145\).*conflicting labels \[0, 1\]"): check_duplicates(b)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); c = check_duplicates(b, on='drop')
    assert len(c) == 778 and sorted(r['item'] for r in c.attrs['duplicates']) == ['benign/benign (433).png', 'malignant/malignant (145).png']
    x = task_tensor(b.iloc[:4], 64)
    assert x.shape == (4, 1, 64, 64) and x.dtype == torch.uint8

def test_ddti_counts_and_grouped_folds(tmp_path):
    root = _need('ddti')
    assert pd.read_csv(root/'diagnosis.csv', header=None)[2].value_counts().to_dict() == {1: 386, 0: 72}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); d = read_ddti(root)
    # two labelled negatives of the shared copy (362_1(1), 362_1(2)) have no crop on disk: left out and reported
    assert d.label.value_counts().to_dict() == {1: 386, 0: 72 - len(d.attrs['missing'])}
    assert sorted(m['name'] for m in d.attrs['missing']) == ['362_1(1)', '362_1(2)']
    with pytest.raises(ValueError, match=r"348_1\(1\)\.png"): make_folds(d, 5, seed=0)   # identical crops of one case
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); f = make_folds(d, 5, seed=0, duplicates='drop')
    assert len(f) == len(d) - 9 and {r['reason'] for r in f.attrs['duplicates']} == {'duplicate'}
    assert f.groupby('group').fold.nunique().max() == 1     # no case on both sides of a split
    for k in range(5):
        assert not set(f.group[f.fold == k]) & set(f.group[f.fold != k])
        assert f.label[f.fold == k].nunique() == 2
    save_folds(f, tmp_path/'ddti_folds.csv')
    assert load_folds(tmp_path/'ddti_folds.csv', d.loc[f.index]).fold.tolist() == f.fold.tolist()
    tr = f[f.fold != 0]
    s1, s10 = subsample_fraction(tr, 0.01, seed=0), subsample_fraction(tr, 0.1, seed=0)
    assert set(s1.index) <= set(s10.index) and (s1.label.value_counts() >= 2).all()

def test_pretrain_pool_dls():
    csv = _need('pretrain_pool.csv')
    assert len(pd.read_csv(csv)) == 2531
    dls = pretrain_dls(csv, size=64, bs=256, device='cpu')
    assert len(dls.table) == 2531 and dls.bad_files == []
    assert len(dls.pair_vocab) == 4 and dls.pair_vocab == ['CT/brain', 'MR/brain', 'US/breast', 'US/thyroid']
    x, ym, yp, yl = dls.one_batch()
    assert x.shape == (256, 1, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert ym.shape == (256, dls.meta_encoder.n_out) and (ym.sum(1) == 2).all()
    assert set(dls.meta_encoder.vocab['modality']) == {'CT', 'MR', 'US'}
    assert yp.max() < 4 and yl.max() < len(dls.label_vocab)
    assert len(dls.train) == 2531 // 256

@pytest.mark.parametrize('name,counts', [('breastmnist', {'train': 546, 'valid': 78, 'test': 156}),
                                         ('pneumoniamnist', {'train': 2428, 'valid': 270, 'test': 468})])
def test_medmnist(name, counts):
    npz = _need('medmnist', f'{name}.npz')
    m = read_medmnist(npz)
    assert m.split.value_counts().to_dict() == counts
    assert set(m.label) == {0, 1}
    z = np.load(npz)
    assert (load_image(m.path[0]) == z['train_images'][0]).all()
    assert task_tensor(m.iloc[:8], 28).shape == (8, 1, 28, 28)

def test_busbra_counts_and_publisher_folds():
    root = _need('busbra')
    b = read_busbra(root)
    assert list(b.columns[:5]) == list(TASK_COLUMNS)
    assert (len(b), b.group.nunique()) == (1875, 1064)
    assert b.label.value_counts().to_dict() == {0: 1268, 1: 607}
    assert sorted(b.fold.unique()) == [0, 1, 2, 3, 4] and sorted(b.kfold.unique()) == [1, 2, 3, 4, 5]
    assert b.groupby('group').fold.nunique().max() == 1       # the publisher's folds are patient-wise
    assert len(check_duplicates(b)) == 1875                   # no image twice
    assert b.fold.value_counts().sort_index().tolist() == [376, 385, 366, 365, 383]
    assert 'fold' not in read_busbra(root, folds=None).columns
    f = make_folds(read_busbra(root, folds=None), 5, seed=0)
    assert f.groupby('group').fold.nunique().max() == 1
    assert task_tensor(b.iloc[:3], 64).shape == (3, 1, 64, 64)

def test_kneeoa_counts_and_patient_folds():
    root = _need('kneeoa', 'task')
    k = read_kneeoa(root)
    # the shared README says 400 / 400; the grade folders hold 342/158/181/95/24, so KL >= 2 is 300 of 800
    assert (len(k), k.group.nunique()) == (800, 400)
    assert k.kl.value_counts().sort_index().tolist() == [342, 158, 181, 95, 24]
    assert k.label.value_counts().to_dict() == {0: 500, 1: 300}
    assert (k.groupby('group').size() == 2).all() and set(k.side) == {'L', 'R'}
    assert len(check_duplicates(k)) == 800                      # no image twice
    f = make_folds(k, 5, seed=0)
    assert f.groupby('group').fold.nunique().max() == 1         # both knees of a patient fall in one fold
    assert read_kneeoa(root.parent).equals(k)                   # the parent folder (with task/) reads the same

def test_realrin_table_reads_and_every_file_exists():
    csv = _need('realrin.csv')
    t = read_pretrain_table(csv)
    assert len(t) == 4894 and t.pair.nunique() == 9 and t['class'].nunique() == 19
    assert sorted(t.pair.unique()) == ['CT/brain', 'CT/chest', 'MG/breast', 'MR/brain', 'MR/spine', 'US/fetal head',
                                       'US/thyroid', 'XR/chest', 'XR/knee']
    assert all(os.path.isfile(f) for f in t.file)
    sub = t.groupby('pair').head(2)
    x, keep, bad = decode_images(sub.file.tolist(), 32)
    assert x.shape == (18, 1, 32, 32) and bad == []
