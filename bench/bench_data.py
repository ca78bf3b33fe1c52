"""Pretraining DataLoader throughput and SynthRIN generation time.

    python bench/bench_data.py [--sizes 64 224] [--epochs 3] [--device cpu] [--threads 1]

Prints, for each image size, on the real `../shared/data/pretrain_pool.csv` when present (else a generated set of PNGs
of mixed sizes, grayscale and RGB):
- the one-off cost of decoding + resizing every image into the in-memory uint8 tensor (images/s), with the default
  decoding threads and with one thread (the baseline, same process);
- the per-epoch iteration rate of `dls.train` (images/s: index the uint8 tensor, convert to float in [0,1]), against the
  baseline of decoding every image per item through the same DataLoader (`in_memory=False`), i.e. what a plain
  file-reading DataLoader costs each epoch;
and the time `modan_nb.synth.make_demo_data` takes to write the demo-scale SynthRIN into a temporary folder (skipped, with
a message, where modan_nb.synth does not exist yet).
"""
import argparse, json, os, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from PIL import Image

from modan_nb.core import shared_data_dir
from modan_nb.data import pretrain_dls

def generated_table(root:Path, n:int=1200, seed:int=0)->Path:
    "A pretraining table of `n` random PNGs of mixed sizes (a stand-in where no real data is around)."
    rng = np.random.default_rng(seed)
    pairs = [('MR', 'knee'), ('MR', 'brain'), ('CT', 'brain'), ('CT', 'chest'), ('US', 'thyroid'), ('US', 'breast')]
    rows = []
    for i in range(n):
        m, a = pairs[i % len(pairs)]
        h, w = rng.integers(200, 520, 2)
        arr = rng.integers(0, 255, (h, w, 3) if i % 5 == 0 else (h, w), dtype=np.uint8)
        p = f'{m}/{a}/normal/{i:05d}.png'
        (root/p).parent.mkdir(parents=True, exist_ok=True); Image.fromarray(arr).save(root/p)
        rows.append(dict(path=p, modality=m, anatomy=a, label='normal'))
    pd.DataFrame(rows).to_csv(root/'metadata.csv', index=False)
    return root/'metadata.csv'

def timed(f):
    t0 = time.perf_counter(); r = f(); return r, time.perf_counter() - t0

def iterate(dl, epochs, device):
    n = 0
    for _ in range(epochs):
        for b in dl: n += len(b[0])
    if device.type == 'cuda': torch.cuda.synchronize()
    return n

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--sizes', type=int, nargs='+', default=[64, 224])
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--bs', type=int, default=256)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (the machine is shared)')
    ap.add_argument('--lazy-n', type=int, default=512, help='images read per item for the lazy baseline')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix='bench_data_') as d: run(args, device, Path(d))

def run(args, device, tmp):
    "The benchmark proper; `tmp` is removed by the caller, whatever happens."
    shared = shared_data_dir()
    if shared is not None and (shared/'pretrain_pool.csv').is_file():
        table, what = shared/'pretrain_pool.csv', f'real pretrain_pool.csv ({shared})'
    else:
        table, what = generated_table(tmp/'gen'), 'generated PNG set (no shared data here)'
    n_rows = len(pd.read_csv(table))
    print(f"data: {what}, {n_rows} images; device {device}; torch threads {args.threads}; cpu count {os.cpu_count()}")
    print(f"{'size':>5} {'decode img/s':>13} {'1-thread img/s':>15} {'ratio':>6} | {'epoch img/s':>12} {'lazy img/s':>11} {'ratio':>7}")
    for size in args.sizes:
        dls, t_dec = timed(lambda: pretrain_dls(table, size=size, bs=args.bs, device=device))
        _, t_dec1 = timed(lambda: pretrain_dls(table, size=size, bs=args.bs, device=device, decode_workers=1))
        iterate(dls.train, 1, device)                                           # warm-up
        n_it, t_it = timed(lambda: iterate(dls.train, args.epochs, device))
        sub = pd.read_csv(table).sample(min(args.lazy_n, n_rows), random_state=0)
        sub.attrs['root'] = str(Path(table).parent)
        lazy = pretrain_dls(sub, size=size, bs=min(args.bs, len(sub)), device=device, in_memory=False)
        n_lz, t_lz = timed(lambda: iterate(lazy.train, 1, device))
        r_dec, r_dec1, r_it, r_lz = n_rows/t_dec, n_rows/t_dec1, n_it/t_it, n_lz/t_lz
        print(f"{size:>5} {r_dec:>13.0f} {r_dec1:>15.0f} {r_dec/r_dec1:>5.1f}x | {r_it:>12.0f} {r_lz:>11.0f} {r_it/r_lz:>6.0f}x")
        print(f"      one-off decode of {n_rows} images: {t_dec:.2f}s ({dls.train.dataset.x.numel()/2**20:.0f} MiB uint8); "
              f"{args.epochs} epochs of {len(dls.train)} batches x {dls.train.bs}: {t_it:.3f}s")
    try:
        from modan_nb.synth import make_demo_data
    except ImportError as e:
        print(f"SynthRIN: skipped, modan_nb.synth is not available in this checkout ({e})")
    else:
        paths, t = timed(lambda: make_demo_data(root=tmp/'synth', seed=0))
        n_png = sum(1 for _ in (tmp/'synth').rglob('*.png'))
        parts = json.loads((tmp/'synth'/'synth_manifest.json').read_text()).get('seconds', {})
        print(f"SynthRIN demo-scale generation (make_demo_data): {t:.1f}s, {n_png} PNG files written; "
              + ', '.join(f'{k} {v:.1f}s' for k, v in parts.items()))

if __name__ == '__main__': main()
