"""An archive larger than memory: header scan, cache build, batches from the cache against the in-memory tensor, peak memory.

    python bench/bench_archive.py            (5,000 generated files, a 100,000-image cache at 64 px; under 10 minutes on 2 cores)
    python bench/bench_archive.py --n 300 --big 5000 --n224 500 --steps 5     (a quick check of the script itself)

Everything is generated in a temporary folder, removed at the end even when the run fails.
"""
import argparse, os, resource, shutil, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

GPU_NEED = 10_000 # images/s: an ESTIMATE (not measured here) of what one H100 pretraining ResNet-18 at 224 px in bf16 consumes, see below
GPU_NOTE = ("an estimate, not a measurement: NVIDIA's published ResNet-50 mixed-precision training rates are a few thousand "
            "images/s per A100; ResNet-18 needs ~2.3x fewer FLOPs and an H100 is ~1.5-2x an A100, so several thousand to "
            "~10,000 images/s; the contrastive methods' two views per image halve the images per step, so 10,000 is a high bound")

# ---------------------------------------------------------------- the archive
def _dcm(path, arr, **tags):
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b'\0' * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    for k, v in tags.items(): setattr(ds, k, v)
    ds.Rows, ds.Columns = arr.shape[-2:]; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11; ds.PixelRepresentation = 0
    if arr.ndim == 3: ds.NumberOfFrames = arr.shape[0]
    ds.PixelData = arr.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)

def _ct_phantoms(rng, k=8, s=512):
    "k 512x512 CT slices in stored values (HU + 1024): a body ellipse, organs, bone, noise."
    yy, xx = np.mgrid[:s, :s] / s - .5
    out = []
    for i in range(k):
        hu = np.full((s, s), -1000.)
        body = (xx / (.42 + .03*i/k))**2 + (yy / .33)**2 < 1
        hu[body] = 40 + rng.normal(0, 15, body.sum())
        for _ in range(4):
            cx, cy, r = rng.uniform(-.2, .2), rng.uniform(-.15, .15), rng.uniform(.03, .1)
            hu[((xx-cx)**2 + (yy-cy)**2 < r*r) & body] = rng.choice([-700, 60, 300, 900])
        out.append(np.clip(hu + 1024, 0, 4095).astype(np.uint16))
    return out

def _us_frames(rng, k=8, h=480, w=640):
    "k 8-bit ultrasound-like frames: speckle inside a fan."
    yy, xx = np.mgrid[:h, :w]
    ang, rad = np.arctan2(xx - w/2, yy + 40), np.hypot(xx - w/2, yy + 40)
    fan = (np.abs(ang) < .6) & (rad < h)
    return [np.where(fan, np.clip(rng.rayleigh(40 + 5*i, (h, w)), 0, 255), 0).astype(np.uint8) for i in range(k)]

def make_archive(folder, n=5000, seed=0)->pd.DataFrame:
    "n files under `folder`: 60% 512x512 16-bit CT DICOMs (window tags), 40% 8-bit ultrasound PNGs, a few multi-frame DICOMs and broken files."
    from PIL import Image
    folder = Path(folder); (folder/'ct').mkdir(parents=True, exist_ok=True); (folder/'us').mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    cts, uss = _ct_phantoms(rng), _us_frames(rng)
    n_mf, n_bad = max(2, n // 500), max(4, n // 250)
    n_ct = int(.6 * (n - n_mf - n_bad)); n_us = n - n_mf - n_bad - n_ct
    parts = [('CHEST', 'chest'), ('ABDOMEN', 'abdomen'), ('HEAD', 'brain')]
    rows = []
    for i in range(n_ct):
        tag, ana = parts[i % 3]
        _dcm(folder/'ct'/f'{i:06d}.dcm', np.roll(cts[i % 8], i % 37, axis=1), Modality='CT', BodyPartExamined=tag,
             StudyDescription=f'CT {tag} W CONTRAST', RescaleIntercept=-1024, RescaleSlope=1, WindowCenter=40, WindowWidth=400)
        rows.append(dict(path=f'ct/{i:06d}.dcm', modality='CT', anatomy=ana))
    for i in range(n_us):
        Image.fromarray(np.roll(uss[i % 8], i % 29, axis=0)).save(folder/'us'/f'{i:06d}.png', compress_level=1)
        rows.append(dict(path=f'us/{i:06d}.png', modality='US', anatomy=['breast', 'thyroid'][i % 2]))
    for i in range(n_mf):   # multi-frame: headers read, but not an image (listed unreadable by the cache)
        _dcm(folder/'ct'/f'mf{i}.dcm', np.stack(cts[:4])[:, ::4, ::4], Modality='CT', BodyPartExamined='CHEST', RescaleIntercept=-1024, RescaleSlope=1)
        rows.append(dict(path=f'ct/mf{i}.dcm', modality='CT', anatomy='chest'))
    for i in range(n_bad):   # half: DICOMs cut short in their pixel data; half: PNGs that are not PNGs
        if i % 2 == 0:
            b = (folder/'ct'/f'{i % n_ct:06d}.dcm').read_bytes()
            (folder/'ct'/f'bad{i}.dcm').write_bytes(b[:len(b) // 2]); rows.append(dict(path=f'ct/bad{i}.dcm', modality='CT', anatomy='chest'))
        else:
            (folder/'us'/f'bad{i}.png').write_bytes(b'\x89PNG\r\n\x1a\n' + rng.bytes(200)); rows.append(dict(path=f'us/bad{i}.png', modality='US', anatomy='breast'))
    df = pd.DataFrame(rows); df.attrs['root'] = str(folder)
    return df

def fill_cache(folder, files, size, seed=0, chunk=4096):
    "A complete cache of `files` at `size` px filled from generated arrays (no decoding), as `build_cache` would leave it."
    from modan_nb.cache import cache_header, _create, _pixel_offset, _mark, _finish
    folder = Path(folder); h = cache_header(files, size); _create(folder, h)
    rng, off, nb = np.random.default_rng(seed), _pixel_offset(folder), size*size
    with open(folder/'images.npy', 'r+b') as f:
        for s in range(0, len(files), chunk):
            k = min(chunk, len(files) - s)
            f.seek(off + s*nb); f.write(rng.integers(0, 256, (k, nb), dtype=np.uint8).tobytes())
        f.flush(); os.fsync(f.fileno())
    _mark(folder, range(len(files)), [1]*len(files)); _finish(folder, files, h)
    return folder

def fake_table(root, n):
    mods, anas = ['CT', 'MR', 'US', 'XR'], ['brain', 'knee', 'chest', 'abdomen', 'breast']
    df = pd.DataFrame(dict(path=[f'img/{i:07d}.png' for i in range(n)], modality=[mods[i % 4] for i in range(n)],
                           anatomy=[anas[i % 5] for i in range(n)]))
    df.attrs['root'] = str(root)
    return df

# ---------------------------------------------------------------- child processes (peak memory)
def _rss_mb(peak=True):
    "This process's peak (VmHWM) or current (VmRSS) resident memory in MB; getrusage's ru_maxrss would carry the parent's over exec."
    try:
        for l in open('/proc/self/status'):
            if l.startswith('VmHWM:' if peak else 'VmRSS:'): return int(l.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 # elsewhere: an upper bound

def child(what, root, cache, n, size, bs, steps):
    "Run in a fresh process; prints 'RSS <start MB> <peak MB> <seconds>'."
    import torch
    torch.set_num_threads(1); warnings.simplefilter('ignore')
    from modan_nb.data import pretrain_dls, PretrainDataset, TensorImageDL
    from modan_nb.learner import make_augment, get_recipe, pretrain
    from fastai.callback.core import Callback, CancelFitException
    start = _rss_mb(peak=False); t0 = time.perf_counter()
    if what == 'memory':   # the contrast: the same set as one in-memory tensor, loader only
        x = torch.from_numpy(np.load(Path(cache)/'images.npy'))
        dl = TensorImageDL(PretrainDataset(x, [torch.zeros(len(x), 1)]), bs=bs, shuffle=True, drop_last=True, device='cpu')
        for _ in dl: pass
    else:
        dls = pretrain_dls(fake_table(root, n), size=size, bs=bs, label_col=None, device='cpu', cache=cache)
        if what == 'epoch':   # one epoch of batches, each made into two augmented views (no model)
            aug = make_augment(get_recipe('modan'), size)
            for b in dls.train: aug(b[0]); aug(b[0])
        else:
            class Stop(Callback):
                def after_batch(self):
                    if self.learn.iter + 1 >= steps: raise CancelFitException
            pretrain('modan', dls, epochs=1, size=size, path=Path(cache).parent/'run', cbs=[Stop()], progress=False)
    print(f"RSS {start:.0f} {_rss_mb():.0f} {time.perf_counter() - t0:.1f}")

def run_child(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(Path(__file__).parents[1]), MODAN_DEVICE='cpu', IN_TEST='1')
    r = subprocess.run([sys.executable, __file__, '--child', *map(str, args)], capture_output=True, text=True, env=env)
    line = [l for l in r.stdout.splitlines() if l.startswith('RSS ')]
    if r.returncode or not line: raise RuntimeError(f"child {args[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return [float(v) for v in line[-1].split()[1:]]

# ---------------------------------------------------------------- figures
def batches_per_s(dl, k, reps=3):
    "The best of `reps` timings of `k` batches (a random order each), in batches/s."
    best = 0
    for _ in range(reps):
        it = iter(dl); t = time.perf_counter()
        for _ in range(k): next(it)
        best = max(best, k / (time.perf_counter() - t))
    return best

def raw_rate(c, bs, k, reps=3):
    "images/s of uint8 batches read from the cache (random rows), the best of `reps`."
    import torch
    g, best = torch.Generator().manual_seed(0), 0
    for _ in range(reps):
        idx = [torch.randperm(len(c), generator=g)[:bs] for _ in range(k)]
        t = time.perf_counter()
        for i in idx: c[i]
        best = max(best, k*bs / (time.perf_counter() - t))
    return best

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=5000, help='files in the generated archive')
    ap.add_argument('--big', type=int, default=100_000, help='images of the generated 64 px cache (memory figures)')
    ap.add_argument('--n224', type=int, default=4000, help='images of the generated 224 px cache (batch rates)')
    ap.add_argument('--bs', type=int, default=256); ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--pbs', type=int, default=8, help='batch size of the pretraining steps (a CPU step of ResNet-18 takes seconds)')
    ap.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        w, root, cache, n, size, bs, steps = a.child; return child(w, root, cache, int(n), int(size), int(bs), int(steps))
    import torch
    torch.set_num_threads(1); warnings.simplefilter('ignore')
    from modan_nb.metadata import read_dicom_metadata
    from modan_nb.cache import build_cache, CachedImages
    from modan_nb.data import PretrainDataset, TensorImageDL
    from modan_nb.learner import make_augment, get_recipe
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix='bench_archive_'))
    T0 = time.perf_counter()
    try:
        print(f"machine: {cores} cores (shared: other users' load lowers every rate; ratios are taken in one process, back to back)")
        t = time.perf_counter(); df = make_archive(tmp/'archive', a.n)
        mb = sum(f.stat().st_size for f in (tmp/'archive').rglob('*') if f.is_file()) / 2**20
        print(f"archive: {len(df)} files, {mb:.0f} MB ({(df.modality == 'CT').sum()} CT DICOMs incl. multi-frame and broken, "
              f"{(df.modality == 'US').sum()} US PNGs), generated in {time.perf_counter() - t:.0f} s")

        print("\n-- header scan: read_dicom_metadata(folder), headers only")
        for w in (1, cores):
            t = time.perf_counter(); m = read_dicom_metadata(tmp/'archive', missing='skip', n_workers=w, progress=False); dt = time.perf_counter() - t
            n_files = len(m) + len(m.attrs['skipped'])
            print(f"{w} process(es): {n_files / dt:7.0f} files/s  ({n_files} DICOMs in {dt:.1f} s; {len(m)} read, {len(m.attrs['skipped'])} unreadable listed)")

        print("\n-- cache build: build_cache(table, 64, folder) decodes each file once (on_bad='skip')")
        sub = df.sample(min(len(df), 300), random_state=0)   # the same mix of CT, US and broken files
        t = time.perf_counter(); build_cache(sub, 64, tmp/'c1', on_bad='skip', n_workers=0, progress=False); d1 = time.perf_counter() - t
        print(f"1 process   : {len(sub) / d1:7.0f} images/s  ({len(sub)} of the files; also the lazy store's decoding rate per core, at every epoch)")
        t = time.perf_counter(); build_cache(df, 64, tmp/'c64', on_bad='skip', n_workers=cores, progress=False); dt = time.perf_counter() - t
        ci = CachedImages(tmp/'c64')
        print(f"{cores} processes : {len(df) / dt:7.0f} images/s, {len(df) / dt / cores:.0f} per core  ({len(df)} files in {dt:.1f} s; "
              f"{int((~ci.index.ok).sum())} unreadable listed in index.csv: multi-frame and broken files)")
        t = time.perf_counter(); build_cache(df, 64, tmp/'c64', on_bad='skip', progress=False)
        print(f"reopening the complete cache: {time.perf_counter() - t:.2f} s (header checked, nothing decoded)")
        print(f"the paper's authors: ~27 images/s (10 minutes per epoch of 16,222 images)")

        print(f"\n-- batches/s, bs={a.bs}, 1 thread: the cache (sorted reads from disk, OS page cache warm) against the same images as an in-memory tensor")
        t = time.perf_counter()
        fill_cache(tmp/'big64', fake_table(tmp, a.big).pipe(lambda d: [str(tmp/p) for p in d.path]), 64)
        small = [str(tmp/p) for p in fake_table(tmp, a.big // 10).path]
        fill_cache(tmp/'small64', small, 64)   # the same at a tenth of the size: peak memory must not follow the archive
        fill_cache(tmp/'big224', [str(tmp/f'x/{i}.png') for i in range(a.n224)], 224, seed=1)
        print(f"(generated caches: {a.big} images at 64 px = {a.big*64*64/2**20:.0f} MB, {a.n224} at 224 px = {a.n224*224*224/2**20:.0f} MB, in {time.perf_counter() - t:.0f} s)")
        rates = {}
        for size, folder, k in ((64, 'big64', 150), (224, 'big224', 12)):
            c = CachedImages(tmp/folder); n = len(c); mem = torch.from_numpy(np.load(tmp/folder/'images.npy'))
            ys = [torch.zeros(n, 9), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)]
            dl = lambda x: TensorImageDL(PretrainDataset(x, ys), bs=a.bs, shuffle=True, drop_last=True, device='cpu', seed=0)
            k = min(k, n // a.bs)
            r_mem, r_cache = batches_per_s(dl(mem), k), batches_per_s(dl(c), k)
            rates[size] = (r_cache * a.bs, raw_rate(c, a.bs, k))
            print(f"{size:3d} px loader only      : memory {r_mem:7.1f}  cache {r_cache:7.1f} batches/s   ratio {r_cache / r_mem:.2f}")
            if size == 64:
                aug = make_augment(get_recipe('modan'), size)
                class WithAug:   # the loader + the two augmented views pretraining makes of each batch (on the CPU here)
                    def __init__(self, d): self.d = d
                    def __iter__(self):
                        for b in self.d: aug(b[0]); aug(b[0]); yield b
                r_mem, r_cache = batches_per_s(WithAug(dl(mem)), 10), batches_per_s(WithAug(dl(c)), 10)
                print(f"{size:3d} px loader + 2 views : memory {r_mem:7.1f}  cache {r_cache:7.1f} batches/s   ratio {r_cache / r_mem:.2f}")
            del mem
        print(f"\n-- images/s the cache delivers (one process, one thread) against what a GPU needs")
        for size, (r, raw) in rates.items():
            print(f"{size:3d} px: {raw:9.0f} images/s read as uint8 batches (what stays on the CPU when the GPU converts and augments) "
                  f"= {raw / GPU_NEED:.1f} x the {GPU_NEED:,} a GPU needs; {r:.0f} images/s with the float conversion on this CPU too")
        print(f"(the GPU figure is {GPU_NOTE})")

        print(f"\n-- peak resident memory (fresh processes; the cache holds {a.big} images at 64 px = {a.big*64*64/2**20:.0f} MB)")
        s0, p0, t0 = run_child('epoch', tmp, tmp/'big64', a.big, 64, a.bs, a.steps)
        print(f"one epoch of batches from the cache (pretrain_dls(cache=...), bs {a.bs}, 2 augmented views): peak {p0:.0f} MB "
              f"({p0 - s0:+.0f} MB over the {s0:.0f} MB after imports; {t0:.0f} s)")
        s0, p0, t0 = run_child('epoch', tmp, tmp/'small64', a.big // 10, 64, a.bs, a.steps)
        print(f"   the same from a cache of {a.big // 10} images: peak {p0:.0f} MB ({p0 - s0:+.0f} MB)")
        s1, p1, t1 = run_child('pretrain', tmp, tmp/'big64', a.big, 64, a.pbs, a.steps)
        print(f"pretraining {a.steps} steps from the cache (modan, ResNet-18, bs {a.pbs}, 64 px): peak {p1:.0f} MB ({p1 - s1:+.0f} MB over {s1:.0f} MB; {t1:.0f} s)")
        s1, p1, t1 = run_child('pretrain', tmp, tmp/'small64', a.big // 10, 64, a.pbs, a.steps)
        print(f"   the same from a cache of {a.big // 10} images: peak {p1:.0f} MB ({p1 - s1:+.0f} MB)")
        s2, p2, t2 = run_child('memory', tmp, tmp/'big64', a.big, 64, a.bs, a.steps)
        print(f"contrast: one epoch from the same set as an in-memory tensor (loader only): peak {p2:.0f} MB ({p2 - s2:+.0f} MB over {s2:.0f} MB)")
        print(f"\ntotal {time.perf_counter() - T0:.0f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"temporary folder {tmp} removed: {not tmp.exists()}")

if __name__ == '__main__': main()
