"The decoded cache (modan_nb.cache): the same losses as the in-memory tensor, a killed build resumes, a stale cache is never used; headers read in parallel."
import shutil, json, multiprocessing as mp, os, signal, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).parent)); sys.path.insert(0, str(Path(__file__).parents[1]/'bench'))
from _pretrain_helpers import tiny_table
from modan_nb import cache as C
from modan_nb.cache import build_cache, open_cache, CachedImages
from modan_nb.data import pretrain_dls, load_resized, BadImageError

def _pngs(d, n, px=64, seed=0):
    d = Path(d); d.mkdir(parents=True, exist_ok=True); rng = np.random.default_rng(seed)
    for i in range(n): Image.fromarray(rng.integers(0, 256, (px, px + 8), dtype=np.uint8)).save(d/f'{i:04d}.png')
    return [str(d/f'{i:04d}.png') for i in range(n)]

def _losses(learn): return [float(l) for l in learn.recorder.losses]

def test_pretrain_from_cache_same_losses(tmp_path):
    from modan_nb.learner import modan_pretrain
    torch.set_num_threads(1)
    csv = tiny_table(tmp_path, n=32, px=24)
    mem = pretrain_dls(csv, size=16, bs=8, device='cpu', seed=3)
    cac = pretrain_dls(csv, size=16, bs=8, device='cpu', seed=3, cache=tmp_path/'cache')
    assert isinstance(cac.train.dataset.x, CachedImages)
    a = modan_pretrain(mem, epochs=1, size=16, path=tmp_path/'a', progress=False, seed=3)
    b = modan_pretrain(cac, epochs=1, size=16, path=tmp_path/'b', progress=False, seed=3)
    assert len(_losses(a)) == 4 and _losses(a) == _losses(b)
    # a table goes through the same path with the data option cache=
    c = modan_pretrain(csv, epochs=1, bs=8, size=16, path=tmp_path/'c', progress=False, seed=3, cache=tmp_path/'cache')
    assert _losses(c) == _losses(a)

def _build_in_child(files, folder):
    build_cache(files, 16, folder, n_workers=0, chunk=3, progress=False)

def test_killed_build_resumes(tmp_path):
    "Kill the build at random instants (SIGKILL); after each kill every image marked done is whole; the resumed cache is byte-for-byte a clean one."
    files = _pngs(tmp_path/'img', 300)
    t0 = time.perf_counter()
    clean = build_cache(files, 16, tmp_path/'clean', n_workers=0, progress=False)
    T = time.perf_counter() - t0   # the kills land within a build's duration on this machine, fast or slow
    ref = np.load(clean/'images.npy')
    rng, ctx, kills, tries = np.random.default_rng(0), mp.get_context('fork'), 0, 0
    while kills < 5 and tries < 40:
        tries += 1
        p = ctx.Process(target=_build_in_child, args=(files, tmp_path/'k')); p.start()
        time.sleep(float(rng.uniform(0.02, 1.0))*T); os.kill(p.pid, signal.SIGKILL); p.join()
        h = C._read_header(tmp_path/'k')
        if h is None: continue
        if h.get('complete'): shutil.rmtree(tmp_path/'k'); continue   # finished before the kill: start again from nothing
        kills += 1
        st = C._status(tmp_path/'k'); done = np.flatnonzero(st == C.OK)
        assert set(np.unique(st)) <= {C.PENDING, C.OK}
        assert (np.load(tmp_path/'k'/'images.npy', mmap_mode='r')[done] == ref[done]).all(), "an image marked done differs from the clean build"
    assert kills >= 1, "no kill landed during the build"
    build_cache(files, 16, tmp_path/'k', n_workers=2, progress=False)   # finish it (worker processes)
    for f in ('images.npy', 'status.bin', 'index.csv', 'header.json'): assert (tmp_path/'k'/f).read_bytes() == (clean/f).read_bytes(), f

def test_stale_cache_rebuilt_or_refused(tmp_path, monkeypatch):
    files = _pngs(tmp_path/'img', 12)
    f = build_cache(files, 16, tmp_path/'c', n_workers=0)
    for kw, word in ((dict(size=24), 'size'), (dict(resize='pad'), 'resize'), (dict(files=files[::-1]), 'another table')):
        args = dict(dict(files=files, size=16, resize='squash'), **kw)
        with pytest.raises(ValueError, match=word): build_cache(args['files'], args['size'], f, resize=args['resize'], mismatch='raise', n_workers=0)
        with pytest.warns(UserWarning, match=word): build_cache(args['files'], args['size'], f, resize=args['resize'], n_workers=0)
        x, idx, h = open_cache(f)
        assert (h['size'], h['resize'], idx.file.tolist()) == (args['size'], args['resize'], args['files'])
        assert (x[0, 0] == load_resized(args['files'][0], args['size'], args['resize'])).all()
        build_cache(files, 16, f, n_workers=0, mismatch='rebuild')   # back to the first
    monkeypatch.setattr(C, 'DECODER_VERSION', C.DECODER_VERSION + 1)   # a new decoder: the old pixels are stale
    with pytest.raises(ValueError, match='decoder'): build_cache(files, 16, f, mismatch='raise', n_workers=0)
    monkeypatch.undo()
    # through pretrain_dls: another size is refused with cache_mismatch='raise'
    df = pd.DataFrame(dict(path=files, modality='CT', anatomy='brain'))
    pretrain_dls(df, size=16, bs=4, label_col=None, device='cpu', cache=f)
    with pytest.raises(ValueError, match='size'): pretrain_dls(df, size=20, bs=4, label_col=None, device='cpu', cache=f, cache_mismatch='raise')
    with pytest.raises(ValueError, match='not complete'):
        C._create(tmp_path/'half', C.cache_header(files, 16)); open_cache(tmp_path/'half')

def test_bad_files_listed(tmp_path):
    files = _pngs(tmp_path/'img', 6); bad = tmp_path/'img'/'bad.png'; bad.write_bytes(b'nope')
    fs = files[:3] + [str(bad)] + files[3:]
    with pytest.raises(BadImageError, match='bad.png'): build_cache(fs, 16, tmp_path/'c', n_workers=0)
    df = pd.DataFrame(dict(path=fs, modality='CT', anatomy='brain'))
    with pytest.warns(UserWarning, match='skipped 1 unreadable'):
        dls = pretrain_dls(df, size=16, bs=2, label_col=None, device='cpu', cache=tmp_path/'c', on_bad='skip')
    assert dls.bad_files[0][0] == str(bad) and len(dls.table) == 6
    x, idx, h = open_cache(tmp_path/'c'); assert h['n_bad'] == 1 and 'bad.png' in idx.error[3]

def test_dicom_headers_parallel(tmp_path):
    from bench_archive import _dcm
    from modan_nb.metadata import read_dicom_metadata
    d = tmp_path/'dcm'; d.mkdir(); arr = np.arange(64, dtype=np.uint16).reshape(8, 8)
    for i in range(90): _dcm(d/f'{i:03d}.dcm', arr, Modality=['CT', 'MR'][i % 2], BodyPartExamined=['CHEST', 'KNEE', ''][i % 3],
                              StudyDescription=['', '', 'MR SHOULDER'][i % 3])
    b = (d/'000.dcm').read_bytes(); (d/'050x.dcm').write_bytes(b[:len(b) - 40])   # pixel data cut short
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); one = read_dicom_metadata(d, missing='skip', n_workers=0)
    two = read_dicom_metadata(d, missing='skip', n_workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert one.attrs['skipped'] == two.attrs['skipped'] and '050x.dcm' in two.attrs['skipped'][0][0]
    assert len(one) == 90 and set(one.anatomy) == {'chest', 'knee', 'shoulder'}
    with pytest.raises(ValueError, match='050x.dcm'): read_dicom_metadata(d, n_workers=2)
