"Bad input to the data readers (issue 13): each is refused with a message naming the file, row and value, or skipped on request."
import warnings
import numpy as np, pandas as pd, pytest
from PIL import Image
from modan_nb.data import load_volume, load_image, pretrain_dls, BadImageError
from modan_nb.tasks import read_mrnet, read_ddti, read_medmnist, subsample_fraction, make_folds, check_duplicates, task_tensor

def _png(path, seed=0, size=16):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)).save(path)
    return path

# --- volumes -----------------------------------------------------------------------------------------------------
def test_npy_volume_with_zero_slices(tmp_path):
    np.save(tmp_path/'0001.npy', np.zeros((0, 32, 32), np.uint8))
    with pytest.raises(BadImageError, match=r"0001\.npy: an empty volume of shape \(0, 32, 32\) \(0 slices\)"):
        load_volume(tmp_path/'0001.npy')
    with pytest.raises(BadImageError, match=r"0001\.npy"):                  # before: a bare 'need at least one array'
        task_tensor(pd.DataFrame(dict(path=[str(tmp_path/'0001.npy')])), 16)

def test_npy_volume_of_python_objects(tmp_path):
    np.save(tmp_path/'0002.npy', np.array([[[{'x': 1}]]], dtype=object), allow_pickle=True)
    with pytest.raises(BadImageError, match=r"0002\.npy: holds Python objects"): load_volume(tmp_path/'0002.npy')

def _mrnet(root, vol):
    (root/'train'/'sagittal').mkdir(parents=True)
    np.save(root/'train'/'sagittal'/'0000.npy', np.zeros((3, 8, 8), np.uint8))
    np.save(root/'train'/'sagittal'/'0001.npy', vol, allow_pickle=True)
    (root/'train-acl.csv').write_text('0000,0\n0001,1\n')
    return root

def test_mrnet_volume_of_objects_or_no_slices_names_the_file(tmp_path):
    with pytest.raises(BadImageError, match=r"0001\.npy: holds Python objects"):     # before: numpy's mmap error, no file
        read_mrnet(_mrnet(tmp_path/'a', np.array([[[None]]], dtype=object)), splits=['train'])
    with pytest.raises(BadImageError, match=r"0001\.npy: an empty volume"):            # before: n_slices 0, kept
        read_mrnet(_mrnet(tmp_path/'b', np.zeros((0, 8, 8), np.uint8)), splits=['train'])

def test_mrnet_label_file_with_header_row(tmp_path):
    root = _mrnet(tmp_path, np.zeros((2, 8, 8), np.uint8))
    (root/'train-acl.csv').write_text('case,label\n0000,0\n0001,1\n')
    with pytest.raises(ValueError, match=r"train-acl\.csv row 1: exam id must be a number, got 'case' \(MRNet label files have no header row\)"):
        read_mrnet(root, splits=['train'])                                             # before: int('case') with no file

# --- DDTI ----------------------------------------------------------------------------------------------------------
def _ddti(root, lines):
    for n in ['1_1', '2_1', '3_1', '4_1']: _png(root/'cropped'/f'{n}.png', seed=int(n[0]))
    (root/'diagnosis.csv').write_text(''.join(l + '\n' for l in lines))
    return root

def test_ddti_row_with_four_fields(tmp_path):
    root = _ddti(tmp_path, ['1_1,4a,1', '2_1,3,0', '3_1,4b,1,oops', '4_1,2,0'])
    with pytest.raises(ValueError, match=r"diagnosis\.csv row 3: expected 3 fields name,TI-RADS,binary, got 4: '3_1,4b,1,oops'"):
        read_ddti(root)                                                                 # before: pandas ParserError, no file
    root2 = _ddti(tmp_path/'first', ['1_1,4a,1,x', '2_1,3,0,y', '3_1,4b,1,z', '4_1,2,0,w'])
    with pytest.raises(ValueError, match=r"row 1: expected 3 fields"): read_ddti(root2)  # before: 4th column silently dropped

def test_ddti_crop_listed_twice_with_conflicting_labels(tmp_path):
    root = _ddti(tmp_path, ['1_1,4a,1', '2_1,3,0', '3_1,4b,1', '4_1,2,0', '2_1,4a,1'])
    with pytest.raises(ValueError, match=r"'2_1' in rows \[2, 5\] with labels \[0, 1\] \(conflicting\)"):
        read_ddti(root)                                                                 # before: both rows kept
    with pytest.warns(UserWarning, match="'2_1'"): d = read_ddti(root, duplicates='drop')
    assert sorted(d.item) == ['cropped/1_1.png', 'cropped/3_1.png', 'cropped/4_1.png']
    assert len(read_ddti(root, duplicates='keep')) == 5
    root2 = _ddti(tmp_path/'same', ['1_1,4a,1', '2_1,3,0', '3_1,4b,1', '4_1,2,0', '3_1,4b,1'])
    with pytest.raises(ValueError, match=r"'3_1' in rows \[3, 5\] with labels \[1, 1\]"): read_ddti(root2)
    with pytest.warns(UserWarning): assert len(read_ddti(root2, duplicates='drop')) == 4

# --- npz references, fractions --------------------------------------------------------------------------------------
def test_negative_index_into_npz(tmp_path):
    imgs = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.savez(tmp_path/'m.npz', train_images=imgs, train_labels=np.array([0, 1, 0]))
    with pytest.raises(BadImageError, match=r"m\.npz::train/-1: the index '-1' is not a non-negative integer"):
        load_image(f"{tmp_path/'m.npz'}::train/-1")                                    # before: the last image, silently
    with pytest.raises(BadImageError, match=r"index 3 out of range, .*m\.npz has 3 train images"):
        load_image(f"{tmp_path/'m.npz'}::train/3")

def test_npz_of_python_objects_names_the_file(tmp_path):
    np.savez(tmp_path/'obj.npz', train_images=np.array([None, 1], dtype=object), train_labels=np.array([0, 1]))
    with pytest.raises(BadImageError, match=r"obj\.npz"): read_medmnist(tmp_path/'obj.npz', splits=['train'])

def test_subsample_fraction_outside_0_1():
    tab = pd.DataFrame(dict(label=[0, 1] * 10, group=[f'g{i}' for i in range(20)]))
    with pytest.raises(ValueError, match=r"got 10 \(a fraction, not a percentage\)"): subsample_fraction(tab, 10)
    with pytest.raises(ValueError, match=r"frac must be a number in \(0, 1\], got 1\.5"): subsample_fraction(tab, 1.5)
    with pytest.raises(ValueError, match=r"got -0\.1"): subsample_fraction(tab, -0.1)
    with pytest.raises(ValueError, match=r"got '0\.5'"): subsample_fraction(tab, '0.5')   # before: a TypeError from '<'

# --- duplicates -----------------------------------------------------------------------------------------------------
def test_same_image_under_two_groups_is_refused_by_make_folds(tmp_path):
    paths = [str(_png(tmp_path/f'{i}.png', seed=i)) for i in range(10)]
    paths[7] = str(_png(tmp_path/'copy_of_2.png', seed=2))                              # same bytes as 2.png
    tab = pd.DataFrame(dict(path=paths, label=[0, 1] * 5, group=[f'p{i}' for i in range(10)]))
    with pytest.raises(ValueError, match=r"row 2 \(path '.*2\.png'.*label 0, group p2\) and row 7 \(path '.*copy_of_2\.png'.*label 1, group p7\) are the same image.*conflicting labels \[0, 1\]"):
        make_folds(tab, 2)                                                              # before: copies in train and test
    with pytest.warns(UserWarning, match='dropped 2 row'): f = make_folds(tab, 2, duplicates='drop')
    assert 2 not in f.index and 7 not in f.index and [r['row'] for r in f.attrs['duplicates']] == [2, 7]
    assert len(make_folds(tab, 2, duplicates='keep')) == 10

def test_check_duplicates_names_the_folds(tmp_path):
    a, b = _png(tmp_path/'a.png', 1), _png(tmp_path/'b.png', 2)
    (tmp_path/'a2.png').write_bytes(a.read_bytes())
    t = pd.DataFrame(dict(path=[str(a), str(b), str(tmp_path/'a2.png')], label=[1, 0, 1], group=['x', 'y', 'z'], fold=[0, 1, 2]))
    with pytest.raises(ValueError, match=r"are the same image \(sha256 [0-9a-f]{12}\), in folds \[0, 2\]"): check_duplicates(t)
    with pytest.raises(ValueError, match='duplicates must be one of'): check_duplicates(t, on='first')

# --- on_bad='skip' -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('in_memory', [True, False])
def test_pretrain_dls_skips_unreadable_images_and_says_which(tmp_path, in_memory):
    rows = [dict(path=f'{i}.png', modality='CT', anatomy=['chest', 'brain'][i % 2]) for i in range(12)]
    for i in range(12): _png(tmp_path/f'{i}.png', seed=i)
    (tmp_path/'3.png').write_bytes((tmp_path/'3.png').read_bytes()[:40])                 # truncated
    rows.append(dict(path='gone.png', modality='CT', anatomy='chest'))                  # missing
    t = pd.DataFrame(rows); t.attrs['root'] = str(tmp_path)
    with pytest.raises((BadImageError, FileNotFoundError), match=r"3\.png|gone\.png"):
        list(pretrain_dls(t, size=16, bs=4, device='cpu', in_memory=in_memory, label_col=None).train)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        dls = pretrain_dls(t, size=16, bs=4, device='cpu', in_memory=in_memory, on_bad='skip', label_col=None)
    assert len(dls.table) == 11 and sorted(p.split('/')[-1] for p, _ in dls.bad_files) == ['3.png', 'gone.png']
    msg = [str(w.message) for w in ws if 'skipped' in str(w.message)]
    assert msg and 'skipped 2 unreadable image(s) of 13' in msg[0] and '3.png' in msg[0] and 'gone.png' in msg[0]
    assert sum(len(b[0]) for b in dls.train) == 8                                       # every batch decodes (11 // 4 * 4)
    with pytest.raises(ValueError, match="on_bad must be 'raise' or 'skip'"):
        pretrain_dls(t, size=16, bs=4, device='cpu', in_memory=in_memory, on_bad='ignore', label_col=None)

# --- metadata values that are almost known ---------------------------------------------------------------------------
def test_misspelt_modality_is_not_a_new_class(tmp_path):
    from modan_nb.metadata import MetadataEncoder, read_metadata_csv
    t = pd.DataFrame(dict(path=[f'{i}.png' for i in range(4)], modality=['US', 'Ultrasoud', 'CT', 'US'], anatomy=['breast', 'breast', 'chest', 'thyroid']))
    with pytest.raises(ValueError, match=r"modality 'Ultrasoud' -> 'US'\? \(a near spelling of a known value; row\(s\) \[1\]\)"):
        MetadataEncoder().fit(t)                                                        # before: a modality 'ULTRASOUD'
    t.to_csv(tmp_path/'meta.csv', index=False)
    with pytest.raises(ValueError, match=r"(?s)meta\.csv: .*modality 'Ultrasoud' -> 'US'\? .*CSV line\(s\) \[3\]"): read_metadata_csv(tmp_path/'meta.csv')
    assert read_metadata_csv(tmp_path/'meta.csv', mapping={'modality': {'Ultrasoud': 'US'}}).modality.tolist() == ['US', 'US', 'CT', 'US']
    assert 'ULTRASOUD' in MetadataEncoder(new_values='accept').fit(t).vocab['modality']

def test_wrong_separator_is_flagged(tmp_path):
    from modan_nb.metadata import MetadataEncoder
    t = pd.DataFrame(dict(modality=['CT', 'CT'], anatomy=['abdomen;pelvis', 'chest']))
    with pytest.raises(ValueError, match=r"anatomy 'abdomen;pelvis' -> 'abdomen\|pelvis'\? \(known values joined by ';'; the separator is '\|'"):
        MetadataEncoder().fit(t)                                                        # before: one anatomy 'abdomen;pelvis'
    enc = MetadataEncoder(mapping={'anatomy': {'abdomen;pelvis': 'abdomen|pelvis'}}).fit(t)
    assert enc.vocab['anatomy'] == ['abdomen', 'chest', 'pelvis']

def test_pretrain_dls_flags_a_misspelt_modality(tmp_path):
    for i in range(8): _png(tmp_path/f'{i}.png', seed=i)
    t = pd.DataFrame(dict(path=[f'{i}.png' for i in range(8)], modality=['US'] * 7 + ['Ultrasoud'], anatomy=['breast'] * 4 + ['thyroid'] * 4))
    t.attrs['root'] = str(tmp_path)
    with pytest.raises(ValueError, match=r"'Ultrasoud' -> 'US'\?"): pretrain_dls(t, size=16, bs=4, device='cpu', label_col=None)
    dls = pretrain_dls(t, size=16, bs=4, device='cpu', label_col=None, mapping={'modality': {'Ultrasoud': 'US'}})
    assert dls.meta_encoder.vocab['modality'] == ['US']
