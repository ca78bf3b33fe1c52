"""Real evidence: pretrain every method on RealRIN and test it on four real tasks, across hospitals, with few labels, and in its embedding.

Pretraining: ../shared/data/realrin.csv (nine real modality-anatomy pairs), a class-balanced subset; a few patients of
every pair are held out for the embedding analysis. Methods: ModAn-MulSupCon, SimCLR, SupCon on the pair, cross-entropy
on the 19-class `label` (the RadImageNet-style baseline), beside Scratch; one architecture (ResNet-18) and one budget
(epochs, batch, image size) for each. Tasks: BUSI malignant vs benign (no normal), BUS-BRA, DDTI, knee KL >= 2.
Protocols: the sklearn probe on frozen features and fine-tuning; folds x repeats; AUC with DeLong intervals; paired DeLong
against ModAn-MulSupCon with Holm. External validation BUSI <-> BUS-BRA; label scarcity (10/25/100 %) on one task;
k-NN accuracy and the pair-Jaccard correlation of each embedding on held-out RealRIN images.

A benchmark, not a test. Interrupt it and run the same command again to resume (pretraining checkpoints every epoch;
every finished unit is on disk). Writes its run folder (data/runs/real_evidence) and bench/real_evidence.out.md.

    python bench/real_evidence.py [--size 32] [--epochs 12] [--per-pair 120] [--folds 5] [--repeats 3] [--fresh]

Several pretraining seeds (the same data, settings, folds and fine-tuning seeds; only the pretraining seed changes), two at
once on two cores, in a run folder outside the work tree:

    python bench/real_evidence.py --seeds 0,1,2 --jobs 2 --run /work/runs/real_evidence_seeds [settings as above]

Each seed's run is a complete single-seed run folder, `<run>/seed_<s>`; a `<run>` that already holds a single-seed run
(seed 0) is reused as seed 0. With --jobs 2 every pretraining (seed x method) runs in its own process, then every seed's
evaluation; each part holds a lock file in its seed's folder, so two processes never write the same file. The report
compares the methods with the pretraining seed as the unit (`seed_bootstrap`: seeds, then patients, resampled) and keeps
the first seed's single-seed report as its last section. Same command again: resume (other settings are refused, named).
"""
from __future__ import annotations
import argparse, copy, json, os, re, shutil, socket, subprocess, sys, time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from modan_nb.core import atomic_write_text   # a kill leaves the old file or the new

METHODS = {'ModAn-MulSupCon': 'modan', 'SimCLR': 'simclr', 'SupCon': 'supcon', 'CE-label': 'ce', 'Scratch': None}
REFERENCE = 'ModAn-MulSupCon'
TASK_TITLES = {'busi': 'BUSI', 'busbra': 'BUS-BRA', 'ddti': 'DDTI', 'knee': 'Knee KL>=2'}
RESULT_SETTINGS = ('size', 'stem', 'epochs', 'bs', 'per_pair', 'holdout_per_pair', 'ft_mode', 'ft_epochs', 'ft_bs', 'ft_lr',
                   'folds', 'seed', 'scarcity_task', 'max_cases')
BENCH = Path(__file__).resolve().parent

def log(*a):
    print(time.strftime('%H:%M:%S'), *([LOG_TAG] if LOG_TAG else []), *a, flush=True)

def _alive(owner:list)->bool:
    "Is the process that wrote a lock (pid, host) still running? On another host: assumed so."
    try: pid, host = int(owner[0]), owner[1]
    except (IndexError, ValueError): return False
    if host != socket.gethostname(): return True
    if pid == os.getpid(): return False   # this process's own lock, left by a part that failed: stale
    try: cmd = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError: return False
    return not cmd or b'python' in cmd   # a reused pid of another program is no owner (empty: a process starting, or a zombie)

@contextmanager
def part_lock(run:Path, name:str):
    "Hold `<run>/.lock_<name>` while one part runs: a second process is refused (not queued); a lock whose process is gone is taken over."
    run.mkdir(parents=True, exist_ok=True)
    f, me = run/f'.lock_{name}', f"{os.getpid()} {socket.gethostname()}"
    for _ in range(50):
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, me.encode()); os.close(fd); break
        except FileExistsError:
            try: owner = f.read_text().split()
            except FileNotFoundError: continue
            if not owner and time.time() - f.stat().st_mtime < 5: time.sleep(0.1); continue   # being written
            if _alive(owner): raise SystemExit(f"{f}: process {owner[0]} on {owner[1]} is running this part; wait for it "
                                              "(or delete the file if that process is gone)")
            f.unlink(missing_ok=True)
    else: raise SystemExit(f"{f}: could not take the lock")
    try: yield
    finally:
        try:
            if f.read_text().strip() == me: f.unlink()
        except FileNotFoundError: pass

def method_slug(m:str)->str: return m.lower().replace(' ', '_').replace('-', '_')

def pretrain_seed(a)->int:
    "The pretraining seed: `--seeds`' seed of this part, else `--seed` (a single-seed run: one seed for everything)."
    s = getattr(a, 'pretrain_seed', None)
    return a.seed if s is None else s

# ---------------------------------------------------------------- pretraining data
def split_realrin(df:pd.DataFrame, # realrin.csv
                  per_pair:int, # at most this many pretraining images per (modality, anatomy) pair
                  holdout_per_pair:int, # at least this many held-out images per pair, whole patients
                  seed:int=0)->pd.DataFrame:
    "The table with a `split` column: 'holdout' (whole patients, for the embedding analysis), 'pretrain' (a capped sample), or 'unused'."
    need = [c for c in ('path', 'modality', 'anatomy', 'group', 'label') if c not in df.columns]
    if need: raise KeyError(f"realrin table has no column(s) {need}; it has {list(df.columns)}")
    rng = np.random.default_rng(seed)
    out = df.assign(split='unused').reset_index(drop=True)
    nog = out['group'].isna() | (out['group'].astype(str).str.strip() == '')
    out['group'] = out['group'].astype(object).where(~nog, 'image:' + out['path'].astype(str))   # no patient id: each image its own
    for _, d in out.groupby(['modality', 'anatomy'], sort=True):
        groups = d['group'].astype(str)
        order = rng.permutation(sorted(groups.unique()))
        held, n = [], 0
        for g in order:
            if n >= holdout_per_pair: break
            held.append(g); n += int((groups == g).sum())
        hold = d.index[groups.isin(held)]
        rest = d.index.difference(hold)
        take = rng.choice(np.asarray(rest), min(per_pair, len(rest)), replace=False)
        out.loc[hold, 'split'] = 'holdout'; out.loc[take, 'split'] = 'pretrain'
    return out

def realrin_split(run:Path, shared:Path, a)->pd.DataFrame:
    f = run/'realrin_split.csv'
    if f.is_file(): return pd.read_csv(f, dtype={'group': str})
    df = split_realrin(pd.read_csv(shared/'realrin.csv', dtype={'group': str}), a.per_pair, a.holdout_per_pair, a.seed)
    atomic_write_text(f, df.to_csv(index=False))
    return df

# ---------------------------------------------------------------- encoders
def build_encoder(method:str, table:pd.DataFrame, shared:Path, run:Path, a)->Path:
    "Pretrain (or load) one method's encoder (under its lock: two processes never pretrain the same one); its file, with the timing in `<slug>.json`."
    slug = method_slug(method)
    path, info_f = run/'encoders'/f'{slug}.pth', run/'encoders'/f'{slug}.json'
    if path.is_file(): return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with part_lock(run, f'pretrain_{slug}'):
        if path.is_file(): return path   # finished by another process just before the lock was taken
        return _build_encoder(method, slug, path, info_f, table, shared, run, a)

def _build_encoder(method, slug, path, info_f, table, shared, run, a):
    from modan_nb.core import seed_everything
    from modan_nb.models import create_encoder, save_encoder
    from modan_nb.learner import pretrain
    seed_everything(pretrain_seed(a))
    if METHODS[method] is None:
        enc, meta, info = create_encoder('resnet18', None, stem=a.stem), None, dict(method=method, epochs=0)
    else:
        pdir = run/'pretrain'/slug
        done_before = 0
        hist = pdir/'history.csv'
        if hist.is_file():
            try: done_before = len(pd.read_csv(hist))
            except pd.errors.EmptyDataError: done_before = 0
        t0 = time.time()
        learn = pretrain(METHODS[method], table, epochs=a.epochs, bs=a.bs, size=a.size, stem=a.stem, root=shared,
                         path=pdir, resume=True, seed=pretrain_seed(a), device='cpu', progress=False)
        secs = time.time() - t0
        n_views = learn.pretrain_info.get('n_views', 2)
        n_imgs = (a.epochs - min(done_before, a.epochs)) * (len(table)//a.bs) * a.bs * n_views
        enc, meta = learn.model.encoder, getattr(learn.dls, 'meta_encoder', None)
        info = dict(method=method, epochs=a.epochs, seconds_this_call=round(secs, 1), epochs_this_call=a.epochs - min(done_before, a.epochs),
                    views_per_s=round(n_imgs/secs, 1) if secs > 0 and n_imgs else None, n_images=len(table), n_views=n_views)
        log(f"  pretrained {method}: {info['epochs_this_call']} epochs in {secs:.0f} s ({info['views_per_s']} views/s)")
    atomic_write_text(info_f, json.dumps(info, indent=1))
    return save_encoder(path, enc.cpu(), meta, **{k: v for k, v in info.items() if v is not None})

def pretrain_seconds(run:Path)->dict:
    "Seconds of each pretraining over all its finished epochs (history.csv's epoch times): every epoch counted once, resumed calls included; None where a time is unreadable."
    out = {}
    for m, slug in METHODS.items():
        f = run/'pretrain'/method_slug(m)/'history.csv'
        if slug is None or not f.is_file(): continue
        h = pd.read_csv(f, dtype=str)   # rows without a validation loss have one field fewer: the time is the field like mm:ss
        times = [next((v for v in r if isinstance(v, str) and re.fullmatch(r'\d+:\d\d', v)), None) for r in h.itertuples(index=False)]
        out[m] = None if any(t is None for t in times) else (len(h), sum(int(t.split(':')[0])*60 + int(t.split(':')[1]) for t in times))
    return out

def pretrain_speed(run:Path, n_images:int, bs:int)->dict:
    "Views per second of each pretraining over all its epochs (`pretrain_seconds`), resumed calls included."
    out = {}
    for m, es in pretrain_seconds(run).items():
        if es is None: out[m] = None; continue
        epochs, secs = es
        views = epochs * (n_images//bs) * bs * (1 if METHODS[m] == 'ce' else 2)
        out[m] = round(views/secs, 1) if secs else None
    return out

def time_spent(run:Path, timings:dict)->dict:
    "Minutes per part of the run, summed over every call: pretraining per method from its epochs' times (a call killed mid-pretraining loses none of them), the rest as `timings` recorded each finished part."
    parts = {f'pretraining {m}': es[1]/60 for m, es in pretrain_seconds(run).items() if es is not None}
    parts.update({k: v/60 for k, v in timings.items() if k != 'pretraining'})   # 'pretraining': a call-level figure older runs recorded
    return parts

def loss_curves(run:Path)->pd.DataFrame:
    "Per-epoch training loss of every pretrained method (from its history.csv)."
    rows = []
    for m, slug in METHODS.items():
        f = run/'pretrain'/method_slug(m)/'history.csv'
        if slug is None or not f.is_file(): continue
        h = pd.read_csv(f)
        h = h[pd.to_numeric(h['epoch'], errors='coerce').notna()]
        rows.append(pd.DataFrame(dict(method=m, epoch=h['epoch'].astype(int) + 1, loss=h['train_loss'].astype(float))))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=['method', 'epoch', 'loss'])

# ---------------------------------------------------------------- tasks
def read_tasks(shared:Path, names=tuple(TASK_TITLES))->dict:
    "The task tables (path, label, group, item) of `names`; BUSI without its normal images; a second copy of an image is dropped."
    from modan_nb import tasks
    readers = {'busi': lambda: tasks.read_busi(shared/'busi', include_normal=False), 'busbra': lambda: tasks.read_busbra(shared/'busbra'),
               'ddti': lambda: tasks.read_ddti(shared/'ddti'), 'knee': lambda: tasks.read_kneeoa(shared/'kneeoa')}
    bad = [n for n in names if n not in readers]
    if bad: raise ValueError(f"unknown task(s) {bad}; known: {list(readers)}")
    out = {}
    for t in names:
        df = readers[t]()
        d = tasks.check_duplicates(df, 'drop').reset_index(drop=True)
        if len(d) < len(df): log(f"  {t}: {len(df) - len(d)} duplicate row(s) dropped (same image content)")
        out[t] = d
    return out

def stats_level(scores:pd.DataFrame, task:str)->str:
    "'patient' (one score per patient) unless a patient of `task` has cases of both labels (two knees), then 'case'."
    d = scores[scores.task == task]
    return 'case' if d.groupby('group')['label'].nunique().max() > 1 else 'patient'

def external_table(tasks:dict)->pd.DataFrame:
    "BUSI and BUS-BRA in one table whose `fold` is the data set: fold 0 = BUSI, fold 1 = BUS-BRA (train on one, test on the other)."
    parts = []
    for k, (t, df) in enumerate((('busi', tasks['busi']), ('busbra', tasks['busbra']))):
        d = df.reset_index(drop=True).copy()
        key = 'item' if 'item' in d.columns else 'path'
        d['item'] = t + ':' + d[key].astype(str); d['group'] = t + ':' + d['group'].astype(str); d['fold'] = k
        parts.append(d[['path', 'label', 'group', 'item', 'fold']])
    return pd.concat(parts, ignore_index=True)

class Trunk(nn.Module):
    "An `Encoder` up to its last residual stage (layer3): frozen, computed once per image."
    def __init__(self, enc):
        super().__init__(); self.enc = enc
    @torch.no_grad()
    def forward(self, x):
        e = self.enc
        if x.dtype == torch.uint8: x = x.float().div_(255)
        n = e.net; x = (x - e.mean) / e.std
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer3(n.layer2(n.layer1(x)))

class Top(nn.Module):
    "The encoder's last residual stage (layer4) and its pooling: trained in fine-tuning on the trunk's cached maps."
    def __init__(self, enc):
        super().__init__(); self.layer4 = copy.deepcopy(enc.net.layer4); self.n_features = enc.n_features
    def forward(self, x): return torch.flatten(F.adaptive_avg_pool2d(self.layer4(x), 1), 1)

def trunk_maps(enc, x:torch.Tensor, bs:int=256)->torch.Tensor:
    "(N, C, h, w) layer3 maps of uint8 images, encoder in eval mode."
    t = Trunk(enc).eval()
    return torch.cat([t(x[i:i+bs]) for i in range(0, len(x), bs)]) if len(x) else torch.zeros(0)

def units_left(out_dir:Path, method:str, task:str, protocol:str, n_units:int, fractions)->bool:
    f = out_dir/'auc.csv'
    if not f.is_file(): return True
    d = pd.read_csv(f)
    d = d[(d.method == method) & (d.task == task) & (d.protocol == protocol) & d.fraction.round(8).isin([round(x, 8) for x in fractions])]
    return len(d) < n_units

def evaluate(encoders:dict, df:pd.DataFrame, task:str, out_dir:Path, a, protocol:str, n_folds:int, fractions=(1.0,), repeats:int=1,
             duplicates:str='error'):
    "run_transfer of every method on one task with one protocol, resumable (finished units are skipped); a duplicate image is an error unless `duplicates` says otherwise."
    from modan_nb.transfer import run_transfer, task_inputs, TransferTask
    from modan_nb.models import load_encoder
    x = None
    if 'fold' in df.columns: n_folds = df['fold'].nunique()   # given folds (BUS-BRA's publisher folds, external validation)
    for m, path in encoders.items():
        n_units = len(fractions) * n_folds * repeats
        if not units_left(out_dir, m, task, protocol, n_units, fractions): continue
        if x is None: x = task_inputs(df, a.size)[0]
        full = load_encoder(path)[0].eval()
        if a.ft_mode == 'top': inputs, enc = trunk_maps(full, x), Top(full)
        else: inputs, enc = x, full
        t0 = time.time()
        au, _ = run_transfer({m: enc}, TransferTask(df, task, duplicates=duplicates, inputs=inputs), protocols=[protocol], n_folds=n_folds,
                             repeats=repeats, fractions=list(fractions), size=a.size, epochs=a.ft_epochs, bs=a.ft_bs, lr=a.ft_lr,
                             step_size=max(1, a.ft_epochs - 1), seed=a.seed, out_dir=out_dir, resume=True, device='cpu')
        log(f"  {task} {protocol} {m}: {len(au)} units ({n_units} asked) in {time.time()-t0:.0f} s")

def complete_results(out_dir:Path, methods)->tuple:
    "The finished units' (aucs, scores), keeping per (task, protocol, fraction) only the repeats every method finished on every fold."
    f, g = out_dir/'auc.csv', out_dir/'scores.csv'
    if not f.is_file(): return pd.DataFrame(), pd.DataFrame()
    au, sc = pd.read_csv(f), pd.read_csv(g, dtype={'case': str, 'group': str})
    au['fraction'], sc['fraction'] = au.fraction.round(8), sc.fraction.round(8)
    keep = []
    for (t, p, fr), d in au.groupby(['task', 'protocol', 'fraction']):
        n_folds = d.fold.nunique()
        for r, dr in d.groupby('repeat'):
            ok = all(dr[dr.method == m].fold.nunique() == n_folds for m in methods)
            if ok: keep.append((t, p, fr, r))
            else: break   # repeats are run in order: a gap ends the complete ones
    key = lambda d: list(zip(d.task, d.protocol, d.fraction, d.repeat))
    ks = set(keep)
    au = au[np.array([k in ks for k in key(au)], dtype=bool) & au.method.isin(methods).to_numpy()].reset_index(drop=True)
    sc = sc[np.array([k in ks for k in key(sc)], dtype=bool) & sc.method.isin(methods).to_numpy()].reset_index(drop=True)
    return au, sc

# ---------------------------------------------------------------- embeddings
def embedding_evidence(encoders:dict, held:pd.DataFrame, shared:Path, a)->pd.DataFrame:
    "k-NN accuracy of modality, anatomy and pair, and the pair-Jaccard correlation, on the held-out RealRIN images."
    from modan_nb.embeddings import load_table_images, metadata_alignment
    from modan_nb.models import load_encoder
    from modan_nb.transfer import encode_images
    x = load_table_images(held, a.size, root=shared)
    feats = {m: encode_images(load_encoder(p)[0], x, bs=256, device=torch.device('cpu')).numpy() for m, p in encoders.items()}
    return metadata_alignment(feats, held, seed=a.seed)

# ---------------------------------------------------------------- statistics and report
def ci_table(scores:pd.DataFrame)->pd.DataFrame:
    "Pooled out-of-fold AUC (scores averaged over repeats, one per patient where a patient has one label) with its DeLong 95% interval."
    from modan_nb.stats import auc_table
    return pd.concat([auc_table(d, level=stats_level(scores, t)).assign(level=stats_level(scores, t))
                      for t, d in scores.groupby('task', sort=False)], ignore_index=True)

def delong_table(scores:pd.DataFrame)->pd.DataFrame:
    "Paired DeLong against the reference, Holm within (task, protocol, fraction)."
    from modan_nb.stats import delong_vs_reference
    return pd.concat([delong_vs_reference(d, reference=REFERENCE, correction='holm', level=stats_level(scores, t))
                      for t, d in scores.groupby('task', sort=False)], ignore_index=True)

def fmt_ci(r): return f"{r.auc:.3f} [{r.auc_lo:.3f}, {r.auc_hi:.3f}]"

def wide_ci(ci:pd.DataFrame, dl:pd.DataFrame, protocol:str, fraction:float=1.0, tasks=None)->pd.DataFrame:
    "Methods x tasks: 'AUC [lo, hi]' with the Holm-adjusted paired DeLong p against the reference."
    d = ci[(ci.protocol == protocol) & (ci.fraction.round(8) == round(fraction, 8))]
    p = dl[(dl.protocol == protocol) & (dl.fraction.round(8) == round(fraction, 8))].set_index(['method', 'task'])['p_adj']
    tasks = [t for t in (tasks or TASK_TITLES) if t in set(d.task)]
    out = pd.DataFrame(index=pd.Index([m for m in METHODS if m in set(d.method)], name='method'))
    for t in tasks:
        col = []
        for m in out.index:
            r = d[(d.method == m) & (d.task == t)]
            if r.empty: col.append(''); continue
            s = fmt_ci(r.iloc[0])
            if (m, t) in p.index: s += f" (p={p[(m, t)]:.3g})"
            col.append(s)
        out[TASK_TITLES.get(t, t)] = col
    return out

def md_table(df:pd.DataFrame, index=True)->str:
    from modan_nb.stats import markdown_table
    return markdown_table(df, index=index)

def fold_mean_table(aucs:pd.DataFrame, protocol:str, fraction:float=1.0)->pd.DataFrame:
    "Mean (sd) over repeats of the mean fold AUC, methods x tasks (the paper's summary number)."
    d = aucs[(aucs.protocol == protocol) & (aucs.fraction.round(8) == round(fraction, 8))]
    s = d.groupby(['method', 'task', 'repeat'])['auc'].mean().groupby(['method', 'task']).agg(['mean', 'std'])
    out = pd.DataFrame(index=pd.Index([m for m in METHODS if m in set(d.method)], name='method'))
    for t in [t for t in TASK_TITLES if t in set(d.task)]:
        cell = lambda v: f"{v['mean']:.3f}" + ('' if np.isnan(v['std']) else f" ({v['std']:.3f})")   # no sd from one repeat
        out[TASK_TITLES[t]] = [cell(s.loc[(m, t)]) if (m, t) in s.index else '' for m in out.index]
    return out

def auto_reading(ci:pd.DataFrame, dl:pd.DataFrame, ext:pd.DataFrame, emb:pd.DataFrame, curves:pd.DataFrame)->list:
    "Sentences computed from the numbers, so the report never says more than they do."
    L = []
    main = dl[dl.fraction.round(8) == 1.0]
    for proto in ('sklearn', 'finetune'):
        d = ci[(ci.protocol == proto) & (ci.fraction.round(8) == 1.0)]
        if d.empty: continue
        best = d.loc[d.groupby('task')['auc'].idxmax()]
        wins = [TASK_TITLES.get(t, t) for t, m in zip(best.task, best.method) if m == REFERENCE]
        q = main[main.protocol == proto]
        sig_better = q[(q.p_adj <= 0.05) & (q['diff'] > 0)]
        sig_worse = q[(q.p_adj <= 0.05) & (q['diff'] < 0)]
        L.append(f"- **{proto}**: {REFERENCE} has the highest pooled AUC on {len(wins)} of {d.task.nunique()} tasks"
                 + (f" ({', '.join(wins)})" if wins else '') + "; best per task: "
                 + ', '.join(f"{TASK_TITLES.get(t, t)} {m} {a:.3f}" for t, m, a in zip(best.task, best.method, best.auc)) + '.')
        L.append(f"  Of {len(q)} paired DeLong comparisons against {REFERENCE} (Holm within task), {len(sig_better)} method(s) are "
                 f"significantly better than it ({', '.join(f'{m} on {TASK_TITLES.get(t, t)}' for m, t in zip(sig_better.method, sig_better.task)) or 'none'}) "
                 f"and {len(sig_worse)} significantly worse ({', '.join(f'{m} on {TASK_TITLES.get(t, t)}' for m, t in zip(sig_worse.method, sig_worse.task)) or 'none'}); "
                 f"the rest are within chance.")
    if len(ext):
        for direction, d in ext.groupby('direction', sort=False):
            b = d.loc[d['auc'].idxmax()]
            L.append(f"- External ({direction}): best {b.method} {b.auc:.3f}; {REFERENCE} "
                     + ', '.join(f"{r.auc:.3f} ({r.protocol})" for r in d[d.method == REFERENCE].itertuples()) + '.')
    if len(emb):
        b = emb.loc[emb['spearman'].idxmax()]
        r = emb.set_index('method')
        L.append(f"- Embeddings: the highest pair-Jaccard correlation is {b.method}'s (rho = {b.spearman:.2f}); "
                 f"{REFERENCE}'s is {r.loc[REFERENCE, 'spearman']:.2f} and Scratch's {r.loc['Scratch', 'spearman']:.2f}. "
                 f"k-NN pair accuracy ranges {emb.knn_pair.min():.3f}-{emb.knn_pair.max():.3f}.")
    if len(curves):
        parts = []
        for m, d in curves.groupby('method', sort=False):
            l = d.sort_values('epoch')['loss'].to_numpy()
            if len(l) >= 4:
                k = max(1, len(l)//4)
                drop_first, drop_last = l[0] - l[k], l[-k-1] - l[-1]
                parts.append(f"{m} {drop_last/max(drop_first, 1e-9):.0%}")
        if parts: L.append("- Loss curves: the drop over the last quarter of epochs as a share of the drop over the first quarter: "
                           + ', '.join(parts) + " (small = levelled off).")
    return L

def plot_curves(curves:pd.DataFrame, path:Path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ms = list(dict.fromkeys(curves.method))
    fig, axs = plt.subplots(1, len(ms), figsize=(2.6*len(ms), 2.4), dpi=100, squeeze=False)
    for ax, m in zip(axs[0], ms):
        d = curves[curves.method == m].sort_values('epoch')
        ax.plot(d.epoch, d.loss, marker='o', ms=3); ax.set_title(m, fontsize=9); ax.set_xlabel('epoch', fontsize=8)
        ax.tick_params(labelsize=8)
    axs[0][0].set_ylabel('training loss', fontsize=8)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def plot_auc(ci:pd.DataFrame, path:Path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    d = ci[ci.fraction.round(8) == 1.0]
    protos = [p for p in ('sklearn', 'finetune') if p in set(d.protocol)]
    tasks = [t for t in TASK_TITLES if t in set(d.task)]
    ms = [m for m in METHODS if m in set(d.method)]
    fig, axs = plt.subplots(1, len(protos), figsize=(5*len(protos) + 1.5, 2.8), dpi=100, squeeze=False, sharey=True)
    w = 0.8/len(ms)
    for ax, p in zip(axs[0], protos):
        for k, m in enumerate(ms):
            r = d[(d.protocol == p) & (d.method == m)].set_index('task').reindex(tasks)
            xs = np.arange(len(tasks)) + (k - (len(ms)-1)/2)*w
            ax.errorbar(xs, r.auc, yerr=[r.auc - r.auc_lo, r.auc_hi - r.auc], fmt='o', ms=3, capsize=2, label=m)
        ax.set_xticks(range(len(tasks))); ax.set_xticklabels([TASK_TITLES[t] for t in tasks], fontsize=8)
        ax.set_title(p, fontsize=9); ax.axhline(0.5, color='grey', lw=0.5); ax.tick_params(labelsize=8)
    axs[0][0].set_ylabel('pooled AUC, 95% DeLong CI', fontsize=8)
    axs[0][-1].legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))   # outside: no point hidden
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

def plot_scarcity(sc:pd.DataFrame, path:Path, title:str):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    protos = [p for p in ('sklearn', 'finetune') if p in set(sc.protocol)]
    fig, axs = plt.subplots(1, len(protos), figsize=(4*len(protos), 2.6), dpi=100, squeeze=False, sharey=True)
    for ax, p in zip(axs[0], protos):
        for m in [m for m in METHODS if m in set(sc.method)]:
            r = sc[(sc.protocol == p) & (sc.method == m)].sort_values('fraction')
            ax.errorbar(r.fraction*100, r.auc, yerr=[r.auc - r.auc_lo, r.auc_hi - r.auc], marker='o', ms=3, capsize=2, label=m)
        ax.set_xscale('log'); ax.set_xticks([10, 25, 100]); ax.set_xticklabels(['10%', '25%', '100%'], fontsize=8)
        ax.set_title(f'{title}: {p}', fontsize=9); ax.set_xlabel('training labels', fontsize=8); ax.tick_params(labelsize=8)
    axs[0][0].set_ylabel('pooled AUC, 95% CI', fontsize=8); axs[0][-1].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)

READING_START, READING_END = '<!-- reading:start -->', '<!-- reading:end -->'

def kept_reading(path:Path)->str:
    "The hand-written reading of an earlier report (between the markers), kept when the report is rewritten."
    if not path.is_file(): return ''
    s = path.read_text()
    if READING_START in s and READING_END in s: return s[s.index(READING_START) + len(READING_START):s.index(READING_END)].strip()
    return ''

# ---------------------------------------------------------------- main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--size', type=int, default=32, help='pretraining and task image size (px)')
    ap.add_argument('--stem', default='torchvision', choices=('paper', 'torchvision'), help="ResNet-18 stem (the paper's 3x3 stride 1 costs 4x more at a given size)")
    ap.add_argument('--epochs', type=int, default=12, help='pretraining epochs, the same for every method')
    ap.add_argument('--bs', type=int, default=64, help='pretraining batch size')
    ap.add_argument('--per-pair', type=int, default=120, help='pretraining images per (modality, anatomy) pair, at most')
    ap.add_argument('--holdout-per-pair', type=int, default=30, help='held-out RealRIN images per pair (whole patients) for the embedding analysis')
    ap.add_argument('--ft-mode', default='top', choices=('top', 'full'),
                    help="fine-tuning: 'top' trains layer4 + head on cached layer3 maps (CPU budget), 'full' trains every layer")
    ap.add_argument('--ft-epochs', type=int, default=3)
    ap.add_argument('--ft-bs', type=int, default=32)
    ap.add_argument('--ft-lr', type=float, default=1e-3)
    ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--scarcity-task', default='busbra', choices=tuple(TASK_TITLES))
    ap.add_argument('--tasks', default=','.join(TASK_TITLES), help='comma-separated subset of ' + ','.join(TASK_TITLES))
    ap.add_argument('--no-external', action='store_true')
    ap.add_argument('--max-cases', type=int, default=600, help='cap each task at about this many cases (whole patients, stratified; 0: all) for the fold grid')
    ap.add_argument('--threads', type=int, default=1, help='torch and BLAS threads (on a machine shared with other jobs, 1 ran 4-7x faster than 2: no oversubscribed OpenMP spinning)')
    ap.add_argument('--seed', type=int, default=0, help='the data seed (RealRIN split, case caps, folds, fine-tuning); also the pretraining seed without --seeds')
    ap.add_argument('--run', default=None, help='run folder (default data/runs/real_evidence)')
    ap.add_argument('--report', default=str(BENCH/'real_evidence.out.md'), help="the Markdown report ('' for none)")
    ap.add_argument('--shared', default=None, help='the shared data folder (default: modan_nb.core.shared_data_dir())')
    ap.add_argument('--fresh', action='store_true', help='delete an earlier run in the run folder first')
    ap.add_argument('--report-only', action='store_true', help='train nothing: rewrite the report from the units finished so far')
    ap.add_argument('--seeds', default=None, help="pretraining seeds, e.g. 0,1,2 (the same data, settings and folds for each; only the pretraining seed changes); each seed's run in <run>/seed_<s>, seed 0 in <run> itself when <run> holds a single-seed run")
    ap.add_argument('--jobs', type=int, default=1, help='with --seeds: this many seeds\' parts (pretrainings, then evaluations) at once, each in its own process with --threads')
    ap.add_argument('--n-boot', type=int, default=2000, help='draws of the seed-level hierarchical bootstrap')
    ap.add_argument('--boot-cases', default='shared', choices=('shared', 'per_seed'),
                    help="the bootstrap's case draw: one per draw for every resampled seed ('shared': seeds and cases are crossed, the same patients are scored in every seed) or one per resampled seed ('per_seed': cases nested in seeds)")
    ap.add_argument('--worker-seed', type=int, default=None, help=argparse.SUPPRESS)   # a --jobs worker: this seed only
    ap.add_argument('--worker-method', default=None, help=argparse.SUPPRESS)         # ... and only this method's pretraining
    return ap.parse_args(argv)

def check_settings(run:Path, a):
    f = run/'settings.json'
    now = {k: getattr(a, k) for k in RESULT_SETTINGS}
    if getattr(a, 'pretrain_seed', None) is not None: now['pretrain_seed'] = a.pretrain_seed
    if f.is_file():
        old = json.loads(f.read_text())
        if 'pretrain_seed' not in old: old['pretrain_seed'] = old.get('seed')   # a single-seed run: pretrained with --seed
        diff = {k: (old.get(k), now[k]) for k in now if old.get(k) != now[k]}
        if diff: raise SystemExit(f"{run} holds a run with other settings {diff} (old, new): pass --fresh, or another --run")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(now, indent=1))

def cap_cases(df:pd.DataFrame, max_cases:int, seed:int)->pd.DataFrame:
    "At most about `max_cases` rows: a stratified sample of whole patients (`tasks.subsample_fraction`); the table itself when smaller."
    if not max_cases or len(df) <= max_cases: return df
    from modan_nb.tasks import subsample_fraction
    return subsample_fraction(df, max_cases/len(df), seed=seed).reset_index(drop=True)

def stages(a, tasks:dict)->list:
    "The grid in the order it runs, (protocol, tasks, fractions, repeats, folds): the cheap probe first, then fine-tuning, each repeat after the last, so an interrupted run has reported the most it could."
    main = [t for t in tasks if t != 'external']
    ext, scar = 'external' in tasks, a.scarcity_task in tasks
    st = []
    for r in range(1, a.repeats + 1):
        for p in ('sklearn', 'finetune'):
            st.append((p, main, (1.0,), r, a.folds))
            if ext: st.append((p, ['external'], (1.0,), r, 2))
            if scar: st.append((p, [a.scarcity_task], (0.1, 0.25, 1.0), r, a.folds))
    return [(p, ts, fr, r, nf) for p, ts, fr, r, nf in st if ts]

def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse(argv)
    torch.set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(a.threads)
    from modan_nb.core import shared_data_dir, runs_dir
    shared = Path(a.shared) if a.shared else shared_data_dir()
    if shared is None or not (shared/'realrin.csv').is_file(): sys.exit("the shared data folder (with realrin.csv) is not here: nothing to benchmark")
    if a.seeds is not None or a.worker_seed is not None:
        if not a.run: raise SystemExit("--seeds needs --run: the run folder, best outside the work tree (e.g. /work/runs/real_evidence_seeds)")
        return run_seeds(a, Path(a.run), shared, argv)
    run = Path(a.run) if a.run else runs_dir('real_evidence')
    if a.fresh and run.exists(): shutil.rmtree(run)
    if list(run.glob('seed_*')): raise SystemExit(f"{run} holds a run with several pretraining seeds ({sorted(p.name for p in run.glob('seed_*'))}): pass --seeds")
    run_one(a, run, shared)

def run_one(a, run:Path, shared:Path, methods=None):
    "The single-seed benchmark in the run folder `run` (one pretraining seed): pretraining, embeddings, the transfer grid, the report (`a.report`, '' for none). With `methods`: only their pretraining."
    check_settings(run, a)
    T0 = time.time()
    if methods is not None:
        split = realrin_split(run, shared, a)
        table = split[split.split == 'pretrain'].reset_index(drop=True)
        for m in methods: build_encoder(m, table, shared, run, a)
        return
    tf = run/'timings.json'   # seconds per part, summed over every call (interrupted and resumed runs included)
    timings = json.loads(tf.read_text()) if tf.is_file() else {}
    def spent(key, dt):
        timings[key] = timings.get(key, 0.) + dt; atomic_write_text(tf, json.dumps(timings, indent=1))
    log(f"run folder {run}; settings: " + ', '.join(f'{k}={getattr(a, k)}' for k in RESULT_SETTINGS) + f", repeats={a.repeats}, threads={a.threads}")
    # 1. pretraining
    split = realrin_split(run, shared, a)
    table = split[split.split == 'pretrain'].reset_index(drop=True)
    held = split[split.split == 'holdout'].reset_index(drop=True)
    log(f"RealRIN: {len(table)} pretraining images, {len(held)} held-out images ({held.group.nunique()} patients), {table.groupby(['modality', 'anatomy']).ngroups} pairs")
    if a.report_only:
        missing = [m for m in METHODS if not (run/'encoders'/f'{method_slug(m)}.pth').is_file()]
        if missing: raise SystemExit(f"--report-only: {run} has no encoder of {missing} yet")
    encoders = {m: build_encoder(m, table, shared, run, a) for m in METHODS}   # their time: `pretrain_seconds`, from the epochs
    info = {m: json.loads((run/'encoders'/f'{method_slug(m)}.json').read_text()) for m in METHODS}
    # 2. embeddings of held-out RealRIN images
    t0 = time.time()
    emb_f = run/'embedding.csv'
    if emb_f.is_file(): emb = pd.read_csv(emb_f)
    else:
        emb = embedding_evidence(encoders, held, shared, a)
        atomic_write_text(emb_f, emb.to_csv(index=False))
    spent('embedding analysis', time.time() - t0)
    log(f"embeddings analysed ({time.time()-T0:.0f} s since start)")
    # 3. the transfer grid, stage by stage; the report is rewritten after each
    full = read_tasks(shared, [t for t in a.tasks.split(',') if t])
    tasks = {t: cap_cases(df, a.max_cases, a.seed) for t, df in full.items()}
    if not a.no_external and {'busi', 'busbra'} <= set(full): tasks['external'] = external_table(full)
    out = run/'transfer'; out.mkdir(exist_ok=True)
    with part_lock(run, 'transfer'): transfer_grid(a, run, out, encoders, tasks, spent, T0, table, held, full, info, emb, timings)
    finish(a, run, out, table, held, full, tasks, info, emb, timings, time.time() - T0, quiet=getattr(a, 'quiet', False))
    log(f"wall time of this call: {time.time()-T0:.0f} s")

def transfer_grid(a, run, out, encoders, tasks, spent, T0, table, held, full, info, emb, timings):
    "The transfer grid, stage by stage (finished units skipped); the report rewritten after each stage."
    for k, (proto, ts, fr, r, nf) in enumerate([] if a.report_only else stages(a, tasks)):
        t0 = time.time()
        for t in ts: evaluate(encoders, tasks[t], t, out, a, proto, nf, fr, r)
        dt = time.time() - t0
        spent(f'stage {k+1}: {proto} on {"+".join(ts)}, fractions {"/".join(f"{x:g}" for x in fr)}, repeats <= {r}', dt)
        if dt > 1:
            log(f"stage {k+1}: {proto} on {', '.join(ts)}, fractions {fr}, repeats {r}: {dt:.0f} s ({time.time()-T0:.0f} s since start)")
            if a.report: finish(a, run, out, table, held, full, tasks, info, emb, timings, time.time() - T0, quiet=True)

def seed_tables(a, run:Path, out:Path, report_path)->dict|None:
    "One run folder's statistics (every complete unit so far): aucs, scores, ci, dl, ext, curves; its csv tables, and its figures (beside `report_path`, or the docs' images for the committed report, or the run folder)."
    aucs, scores = complete_results(out, list(METHODS))
    if scores.empty: return None
    ext_s = scores[scores.task == 'external']
    aucs = aucs.copy(); scores = scores[scores.task != 'external']; aucs = aucs[aucs.task != 'external']
    ci, dl = ci_table(scores), delong_table(scores)
    atomic_write_text(run/'auc_ci.csv', ci.to_csv(index=False)); atomic_write_text(run/'delong.csv', dl.to_csv(index=False))
    ext = external_results(ext_s)
    if len(ext): atomic_write_text(run/'external.csv', ext.to_csv(index=False))
    curves = loss_curves(run)
    # the committed report's figures go with the docs' figures (nbs/images/); another report's beside it; no report: the run folder
    committed = report_path and Path(report_path).resolve() == (BENCH/'real_evidence.out.md').resolve()
    fd = BENCH.parent/'nbs'/'images' if committed else Path(report_path).parent if report_path else run
    fd.mkdir(parents=True, exist_ok=True)
    figs, link = {}, (lambda f: os.path.relpath(fd/f, Path(report_path).resolve().parent) if report_path else f)
    if len(curves): plot_curves(curves, fd/'real_evidence_loss.png'); figs['Pretraining loss per epoch'] = link('real_evidence_loss.png')
    plot_auc(ci, fd/'real_evidence_auc.png'); figs['Pooled AUC with 95% DeLong intervals (100% labels)'] = link('real_evidence_auc.png')
    scar = ci[ci.task == a.scarcity_task]
    if scar.fraction.nunique() > 1:
        plot_scarcity(scar, fd/'real_evidence_scarcity.png', TASK_TITLES[a.scarcity_task]); figs['Label scarcity'] = link('real_evidence_scarcity.png')
    return dict(aucs=aucs, scores=scores, ext_scores=ext_s, ci=ci, dl=dl, ext=ext, curves=curves, figs=figs)

def finish(a, run, out, table, held, full, tasks, info, emb, timings, wall, quiet=False):
    "Statistics, figures and the report from every complete unit so far."
    r = seed_tables(a, run, out, a.report)
    if r is None: return
    aucs, ci, dl, ext, curves, figs = (r[k] for k in ('aucs', 'ci', 'dl', 'ext', 'curves', 'figs'))
    if a.report: report(Path(a.report), a, run, table, held, full, tasks, info, curves, aucs, ci, dl, ext, emb, figs, timings, wall)
    if quiet: return
    for proto in ('sklearn', 'finetune'):
        if proto not in set(ci.protocol): continue
        print(f"\n== {proto}: pooled AUC [95% DeLong CI] (Holm-adjusted paired DeLong p vs {REFERENCE}) ==")
        print(md_table(wide_ci(ci, dl, proto)))
    if len(ext): print('\n== external validation ==\n' + md_table(ext.round(3), index=False))
    print('\n== embeddings (held-out RealRIN) ==\n' + md_table(emb.round(3), index=False))
    if a.report: log(f"report: {a.report}")

def external_results(es:pd.DataFrame)->pd.DataFrame:
    "Per direction, method and protocol: AUC [95% DeLong CI] on the other data set (scores averaged over seeds, one per patient), Holm-adjusted paired DeLong p."
    if es.empty: return pd.DataFrame()
    from modan_nb.stats import auc_ci
    name = lambda f: 'BUS-BRA -> BUSI' if f == 0 else 'BUSI -> BUS-BRA'
    rows = []
    for (m, p, f), d in es.groupby(['method', 'protocol', 'fold'], sort=False):
        o = d.groupby('case').agg(label=('label', 'first'), score=('score', 'mean'), group=('group', 'first'))
        o = o.groupby('group').agg(label=('label', 'first'), score=('score', 'mean'))
        c = auc_ci(o['label'].to_numpy(), o['score'].to_numpy())
        rows.append(dict(direction=name(f), method=m, protocol=p, n_patients=len(o), n_seeds=d.repeat.nunique(), auc=c.auc, auc_lo=c.lower, auc_hi=c.upper))
    ext = pd.DataFrame(rows)
    dl = delong_table(es.assign(task=[name(f) for f in es.fold]))
    return ext.merge(dl.rename(columns={'task': 'direction'})[['direction', 'protocol', 'method', 'p_adj']], how='left', on=['direction', 'protocol', 'method'])

def report(path:Path, a, run, table, held, full, tasks, info, curves, aucs, ci, dl, ext, emb, figs, timings, wall):
    "The single-seed report (its hand-written reading kept)."
    atomic_write_text(path, '\n'.join(report_lines(a, run, table, held, full, tasks, info, curves, aucs, ci, dl, ext, emb, figs, timings, wall, kept_reading(path))))

def report_lines(a, run, table, held, full, tasks, info, curves, aucs, ci, dl, ext, emb, figs, timings, wall, reading:str)->list:
    "The single-seed report's lines."
    from modan_nb.report import software_versions
    spent = time_spent(run, timings)
    L = ['# Real evidence: RealRIN pretraining, four real tasks', '',
         f"Written by `bench/real_evidence.py` on {time.strftime('%Y-%m-%d %H:%M')} (run folder `{run.name}`). "
         f"Its finished parts took {sum(spent.values()):.0f} min in all, summed over every call (this call's wall time: {wall/60:.1f} min); an interrupted run resumes where it stopped.", '',
         '## Reading', '', READING_START, reading or '_(to be written from the numbers below)_', READING_END, '',
         '## Numbers in words (computed)', '', *auto_reading(ci, dl, ext, emb, curves), '',
         '## Settings', '',
         f"- Pretraining: {len(table)} RealRIN images (at most {a.per_pair} per pair, {table.groupby(['modality', 'anatomy']).ngroups} pairs), "
         f"{a.size} px, ResNet-18 with the {a.stem} stem, {a.epochs} epochs, batch {a.bs}, each method's recipe (SGD 0.05 cosine "
         f"for the contrastive ones, Adam 1e-3 for cross-entropy), the same views (ViewAugment). Held out: {len(held)} images of "
         f"{held.group.nunique()} patients (at least {a.holdout_per_pair} per pair), never pretrained on.",
         f"- Tasks (as read; duplicate images dropped): " + '; '.join(f"{TASK_TITLES[t]} {len(d)} images, {int(d.label.sum())} positive, {d.group.nunique()} patients" for t, d in full.items()) + '.',
         f"- Fold grid on at most about {a.max_cases} cases per task (whole patients, stratified; CPU budget): "
         + '; '.join(f"{TASK_TITLES[t]} {len(d)} ({int(d.label.sum())} positive, {d.group.nunique()} patients)" for t, d in tasks.items() if t != 'external') + '.'
         + ' BUS-BRA keeps the publisher\'s patient-wise folds. The knee task has patients with one knee of each class: its AUCs are per knee (case level), folds are by patient.',
         f"- Protocols: sklearn probe (standardised logistic regression, C by grouped inner CV) on frozen features; fine-tuning "
         + ("of the last residual stage (layer4) and a linear head on the frozen, cached layer3 maps (a CPU budget: full fine-tuning of "
            "every layer does not fit)" if a.ft_mode == 'top' else 'of every layer')
         + f", {a.ft_epochs} epoch(s), Adam {a.ft_lr}, batch {a.ft_bs}, best epoch on a grouped 20% validation split. "
         f"{a.folds} grouped stratified folds x up to {a.repeats} repeats (folds fixed, seeds vary; the repeats finished are counted below); scores of a case averaged over repeats, "
         "one score per patient, pooled over folds: AUC with its 95% DeLong interval; paired DeLong against ModAn-MulSupCon, Holm within task and protocol.",
         f"- Label scarcity on {TASK_TITLES[a.scarcity_task]}: 10%, 25% and 100% of the training patients of each fold (stratified); the test folds unchanged.",
         '- Threads: ' + str(a.threads) + '. Pretraining speed (views per second over all epochs, this machine, shared with other jobs; '
         'cross-entropy uses one view per image): ' + ', '.join(f"{m} {v}" for m, v in pretrain_speed(run, len(table), a.bs).items()) + '.',
         f"- Time of the finished parts, summed over every call of this run (min): total {sum(spent.values()):.1f}; " + '; '.join(f"{k} {v:.1f}" for k, v in spent.items() if v >= 1/60) + '.', '']
    done = aucs.groupby(['task', 'protocol', 'fraction']).repeat.nunique().rename('repeats finished').reset_index()
    done['task'] = done.task.map(lambda t: TASK_TITLES.get(t, t))
    L += ['Repeats finished (every method, every fold) per task, protocol and label fraction:', '', md_table(done, index=False), '']
    L += ['## Pretraining loss', '', 'Per-epoch training loss (each method its own loss and scale).', '']
    if len(curves):
        L += [md_table(curves.pivot(index='epoch', columns='method', values='loss').round(3)), '']
    for proto, title in (('sklearn', 'sklearn probe on frozen features'), ('finetune', 'fine-tuning')):
        if proto not in set(ci.protocol): continue
        L += [f'## {title}: pooled AUC [95% DeLong CI] (Holm-adjusted paired DeLong p vs {REFERENCE})', '',
              md_table(wide_ci(ci, dl, proto)), '',
              'Mean (sd over the repeats finished, when more than one) of the mean fold AUC:', '', md_table(fold_mean_table(aucs, proto)), '']
    sc = ci[ci.task == a.scarcity_task]
    if sc.fraction.nunique() > 1:
        L += [f'## Label scarcity: {TASK_TITLES[a.scarcity_task]}', '']
        for proto in ('sklearn', 'finetune'):
            d = sc[sc.protocol == proto]
            t = pd.DataFrame(index=pd.Index([m for m in METHODS if m in set(d.method)], name='method'))
            for fr in sorted(d.fraction.unique()):
                t[f'{fr:.0%} labels'] = [fmt_ci(d[(d.method == m) & (d.fraction == fr)].iloc[0]) for m in t.index]
                pp = dl[(dl.task == a.scarcity_task) & (dl.protocol == proto) & (dl.fraction == fr)].set_index('method')['p_adj']
                t[f'{fr:.0%} labels'] = [s + (f" (p={pp[m]:.3g})" if m in pp.index else '') for s, m in zip(t[f'{fr:.0%} labels'], t.index)]
            L += [f'{proto}:', '', md_table(t), '']
    if len(ext):
        L += ['## External validation: train on one breast ultrasound set, test on the other', '',
              'All images of one data set train (20% of its patients for model selection), all of the other test; seeds (n_seeds) averaged, '
              'scores averaged, one score per patient; AUC [95% DeLong CI] (Holm-adjusted paired DeLong p vs ModAn-MulSupCon).', '']
        t = ext.assign(cell=[fmt_ci(r) + ('' if pd.isna(r.p_adj) else f" (p={r.p_adj:.3g})") for r in ext.itertuples()])
        t = t.pivot_table(index='method', columns=['direction', 'protocol'], values='cell', aggfunc='first')
        t = t.reindex([m for m in METHODS if m in t.index])
        t.columns = [f'{d}, {p}' for d, p in t.columns]
        L += [md_table(t), '']
    L += ['## Does the embedding follow the metadata? (held-out RealRIN images)', '',
          f"{len(held)} images of {held.group.nunique()} patients never pretrained on. k-NN accuracy (k=5, 5-fold CV grouped by patient) "
          "of modality, anatomy and pair; Spearman rho between the cosine similarity of two pairs' centroids and their Jaccard index "
          "(1/3 when they share the modality or the anatomy, 0 otherwise; 36 pair-pairs), with the mean centroid similarity of related "
          "and unrelated pairs.", '', md_table(emb.round(3), index=False), '']
    L += ['## Figures', ''] + [f"![{k}]({v})" for k, v in figs.items()] + ['']
    L += ['## Reproduce', '', '```', 'python bench/real_evidence.py ' + ' '.join(f'--{k.replace("_", "-")} {getattr(a, k)}' for k in RESULT_SETTINGS)
          + f' --repeats {a.repeats} --threads {a.threads}', '```', '',
          'Per-unit results: `<run>/transfer/auc.csv`, every test case\'s score: `<run>/transfer/scores.csv`, tables: `<run>/*.csv`.', '',
          '## Software', ''] + [f"- {k}: {v}" for k, v in software_versions().items()] + ['']
    return L

# ---------------------------------------------------------------- several pretraining seeds
def parse_seeds(s:str)->list:
    "'0,1,2' -> [0, 1, 2]; a clear error for anything else."
    try: seeds = [int(x) for x in str(s).split(',') if x.strip() != '']
    except ValueError: raise SystemExit(f"--seeds {s!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) < len(seeds) or min(seeds) < 0: raise SystemExit(f"--seeds {s!r}: give distinct non-negative integers, e.g. 0,1,2")
    return seeds

def is_single_run(run:Path)->bool:
    "Does `run` itself hold a single-seed run (the layout before --seeds)?"
    return any((run/d).exists() for d in ('encoders', 'pretrain', 'transfer'))

def seed_dir(run:Path, s:int)->Path:
    "Pretraining seed `s`'s folder: `<run>/seed_<s>`, a complete single-seed run folder; seed 0 is `<run>` itself when `<run>` holds a single-seed run (the layout before --seeds), so a finished one is reused."
    if s == 0 and not (run/'seed_0').exists() and is_single_run(run): return run
    return run/f'seed_{s}'

def seed_args(a, s:int):
    "The settings of seed `s`'s part: the same as `a` but the pretraining seed; no report of its own (the seeds' report is written by the parent)."
    b = argparse.Namespace(**vars(a)); b.pretrain_seed, b.report, b.quiet = s, '', True
    return b

def seed_log(s=None):
    "Tag the log lines with seed `s` (None: no tag)."
    global LOG_TAG
    LOG_TAG = '' if s is None else f'[seed {s}]'

LOG_TAG = ''

def worker_command(argv:list, s:int, method=None)->list:
    "The command of one --jobs worker: this script with the parent's arguments (never --fresh), for seed `s` (and only `method`'s pretraining)."
    args = [x for x in argv if x != '--fresh']
    return [sys.executable, str(Path(__file__).resolve()), *args, '--worker-seed', str(s)] + (['--worker-method', method] if method else [])

def run_parallel(cmds:list, jobs:int)->list:
    "Run the commands, `jobs` at once; their return codes."
    def one(c):
        log('start: ' + ' '.join(c[c.index('--worker-seed'):]))
        return subprocess.run(c).returncode
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex: return list(ex.map(one, cmds))

def run_seeds(a, run:Path, shared:Path, argv:list):
    "Every pretraining seed's run (one process, or `--jobs` processes: first every pretraining, then every evaluation), then the seeds' report."
    if a.worker_seed is not None:   # a worker: one seed's part
        seed_log(a.worker_seed)
        b = seed_args(a, a.worker_seed)
        if a.worker_method and a.worker_method not in METHODS: raise SystemExit(f"--worker-method {a.worker_method!r}: not one of {list(METHODS)}")
        return run_one(b, seed_dir(run, a.worker_seed), shared, methods=[a.worker_method] if a.worker_method else None)
    seeds = parse_seeds(a.seeds)
    if a.fresh and run.exists(): shutil.rmtree(run)
    check_settings(run, a)   # the settings every seed shares; each seed's folder checks its own too
    dirs = {s: seed_dir(run, s) for s in seeds}
    splits = {}
    for s, d in dirs.items():   # before any worker: the settings and the split of each seed written by one process only
        b = seed_args(a, s); check_settings(d, b); splits[s] = realrin_split(d, shared, b)
    s0 = seeds[0]
    for s, sp in splits.items():   # the same pretraining and held-out images for every seed
        if not (len(sp) == len(splits[s0]) and (sp['path'].astype(str).to_numpy() == splits[s0]['path'].astype(str).to_numpy()).all()
                and (sp['split'].to_numpy() == splits[s0]['split'].to_numpy()).all()):
            raise SystemExit(f"{dirs[s]/'realrin_split.csv'} differs from {dirs[s0]/'realrin_split.csv'}: the seeds must share the data (another realrin.csv?)")
    log(f"run folder {run}; seeds {seeds}: " + ', '.join(f'{s} in {d}' for s, d in dirs.items()) + f"; jobs {a.jobs}, threads {a.threads} each")
    T0, failed = time.time(), []
    if not a.report_only:
        if a.jobs <= 1:
            try:
                for s, d in dirs.items():
                    seed_log(s); run_one(seed_args(a, s), d, shared)
            finally: seed_log()
        else:
            todo = [(s, m) for s, d in dirs.items() for m, slug in METHODS.items() if slug and not (d/'encoders'/f'{method_slug(m)}.pth').is_file()]
            rc = run_parallel([worker_command(argv, s, m) for s, m in todo], a.jobs)
            failed += [f'seed {s} pretraining {m}' for (s, m), r in zip(todo, rc) if r]
            ok = [s for s in seeds if not any(f.startswith(f'seed {s} ') for f in failed)]
            rc = run_parallel([worker_command(argv, s) for s in ok], a.jobs)
            failed += [f'seed {s} evaluation' for s, r in zip(ok, rc) if r]
    if not a.report_only:
        ef = run/'elapsed.json'   # wall time of the parent calls that finished, summed
        el = json.loads(ef.read_text()) if ef.is_file() else dict(seconds=0., calls=0)
        el = dict(seconds=el['seconds'] + time.time() - T0, calls=el['calls'] + 1, jobs=a.jobs)
        atomic_write_text(ef, json.dumps(el, indent=1))
    if a.report: seeds_report(Path(a.report), a, run, seeds, shared)
    if failed: raise SystemExit(f"part(s) failed: {failed}; run the same command again to resume")
    log(f"wall time of this call: {time.time()-T0:.0f} s")

# ---------------------------------------------------------------- statistics over seeds
def seed_bootstrap(y, # labels 0/1 of the n units (patients, or cases)
                   ref, # (S, n) the reference's pooled out-of-fold scores, one row per pretraining seed
                   other, # (S, n) the other method's, the same units
                   groups=None, # patient of each unit (cases of a patient resampled together); None: units are patients
                   n_boot:int=2000, seed:int=0, alpha:float=0.05,
                   cases:str='shared', # 'shared': one case draw per bootstrap draw for all its seeds (crossed); 'per_seed': one per resampled seed (nested)
                  )->dict:
    "Hierarchical bootstrap of the mean over seeds of AUC(other) - AUC(ref): seeds with replacement, then patients with replacement (stratified by class); percentile CI, two-sided p."
    from modan_nb.stats import _weighted_aucs, _group_codes, check_binary
    ref, other = np.atleast_2d(np.asarray(ref, float)), np.atleast_2d(np.asarray(other, float))
    y = np.asarray(y)
    if ref.shape != other.shape or ref.shape[1] != len(y): raise ValueError(f"scores of shape {ref.shape} and {other.shape} for {len(y)} labels")
    if np.isnan(ref).any() or np.isnan(other).any(): raise ValueError("NaN scores")
    y = np.asarray(check_binary(y, ref[0])[0], float)
    if cases not in ('shared', 'per_seed'): raise ValueError(f"cases must be 'shared' or 'per_seed', got {cases!r}")
    S, n = ref.shape
    codes = _group_codes(groups, n); G = codes.max() + 1
    npos, ncase = np.bincount(codes, weights=y, minlength=G), np.bincount(codes, minlength=G)
    stratum = np.where(npos == 0, 0, np.where(npos == ncase, 1, 2))
    strata = [np.flatnonzero(stratum == k) for k in range(3) if (stratum == k).any()]
    rng = np.random.default_rng(seed)
    def draw(B):
        c = np.zeros((B, G))
        for idx in strata: c[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1/len(idx)), size=B)
        return c[:, codes]
    ones = np.ones((1, n))
    seed_diffs = np.array([_weighted_aucs(ones, y, other[s])[0] - _weighted_aucs(ones, y, ref[s])[0] for s in range(S)])
    pick = rng.integers(0, S, (n_boot, S))   # the resampled seeds of each draw
    boot = np.zeros(n_boot)
    slots = 1 if cases == 'shared' else S
    for j in range(slots):
        W = draw(n_boot)
        D = np.stack([_weighted_aucs(W, y, other[s]) - _weighted_aucs(W, y, ref[s]) for s in range(S)])   # (S, B)
        cols = range(S) if cases == 'shared' else [j]
        for k in cols: boot += D[pick[:, k], np.arange(n_boot)]
    boot /= S
    lo, hi = np.percentile(boot, [100*alpha/2, 100*(1 - alpha/2)])
    p = min(1., 2*min((boot <= 0).sum() + 1, (boot >= 0).sum() + 1)/(n_boot + 1))
    return dict(diff=float(seed_diffs.mean()), diff_lo=float(lo), diff_hi=float(hi), p=float(p), seed_diffs=seed_diffs, n_seeds=S, n=n)

def seed_level_tests(scores:dict, # {pretraining seed: per-case score table (method, task, protocol, fraction, fold, repeat, case, group, label, score)}
                     reference:str=REFERENCE, n_boot:int=2000, seed:int=0, cases:str='shared')->pd.DataFrame:
    "Every method against the reference per (task, protocol, fraction), the pretraining seed as the unit (`seed_bootstrap`); Holm within (task, protocol, fraction)."
    from modan_nb.stats import paired_oof, adjust_pvalues
    keys = list(dict.fromkeys(k for d in scores.values() for k in zip(d.task, d.protocol, d.fraction.round(8))))
    rows = []
    for t, p, f in keys:
        have = {s: d[(d.task == t) & (d.protocol == p) & (d.fraction.round(8) == f)] for s, d in scores.items()}
        have = {s: d for s, d in have.items() if reference in set(d.method)}
        if not have: continue
        level = stats_level(next(iter(have.values())), t)
        for m in [m for m in dict.fromkeys(x for d in have.values() for x in d.method) if m != reference]:
            hs = {s: d for s, d in have.items() if m in set(d.method)}
            prs = {}
            for s, d in hs.items():
                pr = paired_oof(d, m, reference, level=level)
                prs[s] = pr.set_index('group' if level == 'patient' else pr.columns[0]).sort_index()
            ids = [set(x.index) for x in prs.values()]
            if any(i != ids[0] for i in ids): raise ValueError(f"{t}/{p}/{f:g}: the seeds {list(prs)} scored different cases; the seeds must share the data and folds")
            first = next(iter(prs.values()))
            r = seed_bootstrap(first['label'].to_numpy(), np.stack([x['s_ref'].to_numpy() for x in prs.values()]),
                               np.stack([x['s_method'].to_numpy() for x in prs.values()]),
                               groups=None if level == 'patient' else first['group'].to_numpy(), n_boot=n_boot, seed=seed, cases=cases)
            rows.append(dict(task=t, protocol=p, fraction=f, method=m, level=level, n=r['n'], n_seeds=r['n_seeds'], seeds=','.join(map(str, prs)),
                             diff=r['diff'], diff_lo=r['diff_lo'], diff_hi=r['diff_hi'], p=r['p'],
                             seed_diffs=';'.join(f'{x:+.4f}' for x in r['seed_diffs'])))
    out = pd.DataFrame(rows)
    if out.empty: return out
    out['p_adj'] = np.nan
    for _, idx in out.groupby(['task', 'protocol', 'fraction'], sort=False).groups.items(): out.loc[idx, 'p_adj'] = adjust_pvalues(out.loc[idx, 'p'], 'holm')
    return out

EXT_NAMES = ('BUS-BRA -> BUSI', 'BUSI -> BUS-BRA')
LUCK = "one run's luck"
def ext_as_tasks(es:pd.DataFrame)->pd.DataFrame:
    "External-validation scores with each direction as a task of its own (fold 0: BUS-BRA -> BUSI, fold 1: BUSI -> BUS-BRA)."
    return es.assign(task=[EXT_NAMES[int(f)] for f in es.fold])

def seed_results(a, run:Path, seeds:list)->dict:
    "Per seed with results: its tables (`seed_tables`) and embedding; the long tables of every seed (AUC, per-seed DeLong p) and the score tables for the seed-level test."
    per = {}
    for s in seeds:
        d = seed_dir(run, s)
        r = seed_tables(seed_args(a, s), d, d/'transfer', '') if (d/'transfer').is_dir() else None
        if r is None: continue
        r['emb'] = pd.read_csv(d/'embedding.csv') if (d/'embedding.csv').is_file() else pd.DataFrame()
        r['dir'] = d; per[s] = r
    au, dl = [], []
    for s, r in per.items():
        au.append(r['ci'][['task', 'protocol', 'fraction', 'method', 'auc']].assign(seed=s))
        dl.append(r['dl'][['task', 'protocol', 'fraction', 'method', 'diff', 'p_adj']].assign(seed=s))
        if len(r['ext']):
            e = r['ext']
            au.append(e.rename(columns={'direction': 'task'})[['task', 'protocol', 'method', 'auc']].assign(fraction=1.0, seed=s))
            ed = delong_table(ext_as_tasks(r['ext_scores']))
            dl.append(ed[['task', 'protocol', 'fraction', 'method', 'diff', 'p_adj']].assign(seed=s))
    au = pd.concat(au, ignore_index=True) if au else pd.DataFrame(columns=['task', 'protocol', 'fraction', 'method', 'auc', 'seed'])
    dl = pd.concat(dl, ignore_index=True) if dl else pd.DataFrame(columns=['task', 'protocol', 'fraction', 'method', 'diff', 'p_adj', 'seed'])
    au['fraction'], dl['fraction'] = au.fraction.round(8), dl.fraction.round(8)
    scores = {s: pd.concat([r['scores'], ext_as_tasks(r['ext_scores'])], ignore_index=True) for s, r in per.items()}
    return dict(per=per, aucs=au, delong=dl, scores=scores)

def seed_summary(au:pd.DataFrame)->pd.DataFrame:
    "Per (task, protocol, fraction, method): the pooled AUC's mean over seeds, its sd, min and max, and the number of seeds."
    g = au.groupby(['task', 'protocol', 'fraction', 'method'], sort=False)['auc']
    return g.agg(mean='mean', sd='std', min='min', max='max', n_seeds='count').reset_index()

def verdicts(sl:pd.DataFrame, dl:pd.DataFrame, first:int, alpha:float=0.05)->pd.DataFrame:
    "Per comparison: seeds with the mean's sign, seeds where the seed's own DeLong test (Holm) is significant in that direction, whether it was in the first seed (what a report of it alone would claim), and the verdict: 'every seed', 'on average' (seed-level bootstrap only), \"one run's luck\" (the first seed only), or 'none'."
    rows = []
    for r in sl.itertuples():
        d = dl[(dl.task == r.task) & (dl.protocol == r.protocol) & (dl.fraction == r.fraction) & (dl.method == r.method)]
        sign = np.sign(r.diff)
        same = int((np.sign(d['diff']) == sign).sum()); sig = int(((d.p_adj <= alpha) & (np.sign(d['diff']) == sign)).sum())
        f = d[d.seed == first]
        sig_first = bool(len(f)) and bool((f.p_adj <= alpha).iloc[0])
        boot = r.p_adj <= alpha
        v = ('every seed' if sig == r.n_seeds and r.n_seeds > 1 else 'on average' if boot else "one run's luck" if sig_first else 'none')
        rows.append(dict(task=r.task, protocol=r.protocol, fraction=r.fraction, method=r.method, diff=r.diff, diff_lo=r.diff_lo, diff_hi=r.diff_hi,
                         p_adj=r.p_adj, n_seeds=r.n_seeds, same_sign=same, significant=sig, first_significant=sig_first,
                         first_diff=float(f['diff'].iloc[0]) if len(f) else np.nan,
                         same_as_first=int((np.sign(d['diff']) == np.sign(f['diff'].iloc[0])).sum()) if len(f) else 0, verdict=v))
    return pd.DataFrame(rows)

# ---------------------------------------------------------------- the seeds' report
SEEDS_TAG = '<!-- real_evidence: several pretraining seeds -->'
SEED0_START, SEED0_END = '<!-- seed0-reading:start -->', '<!-- seed0-reading:end -->'

def _between(s:str, a:str, b:str)->str: return s[s.index(a) + len(a):s.index(b)].strip() if a in s and b in s else ''

SINGLE_START, SINGLE_END = '<!-- single-seed:start -->', '<!-- single-seed:end -->'

SINGLE_NOTE = '_The single-seed report as it was written (verbatim'   # the note above it (rewritten with each report)

def earlier_single_seed(path:Path)->list|None:
    "The single-seed section of an earlier report, verbatim: a single-seed report whole (headings one level down, its reading kept), or the section a seeds' report kept; None if there is none."
    if not path.is_file(): return None
    s = path.read_text()
    if SEEDS_TAG in s:
        body = _between(s, SINGLE_START, SINGLE_END)
        return _lstrip_blank([l for l in body.splitlines() if not l.startswith(SINGLE_NOTE)]) if body else None   # the note is written anew
    if READING_START not in s: return None
    lines = s.splitlines()
    lines = lines[1:] if lines and lines[0].startswith('# ') else lines
    lines = [('#' + l if l.startswith('## ') else l) for l in lines]
    lines = ['### Reading (written then, for this one seed)' if l == '### Reading' else SEED0_START if l == READING_START else SEED0_END if l == READING_END else l
             for l in lines]
    return _lstrip_blank(lines)

def _lstrip_blank(lines:list)->list:
    "The lines without the blank ones they start with."
    while lines and not lines[0].strip(): lines = lines[1:]
    return lines

def single_seed_lines(a, d0:Path, first:int, emb:pd.DataFrame, shared:Path, path:Path)->list:
    "Seed `first`'s run as a single-seed report (headings one level down), for a seeds' report with no earlier single-seed one."
    a0 = seed_args(a, first)
    split = pd.read_csv(d0/'realrin_split.csv', dtype={'group': str})
    table, held = split[split.split == 'pretrain'].reset_index(drop=True), split[split.split == 'holdout'].reset_index(drop=True)
    full = read_tasks(shared, [t for t in a.tasks.split(',') if t])
    tk = {t: cap_cases(df, a.max_cases, a.seed) for t, df in full.items()}
    if not a.no_external and {'busi', 'busbra'} <= set(full): tk['external'] = external_table(full)
    info = {m: json.loads((d0/'encoders'/f'{method_slug(m)}.json').read_text()) for m in METHODS if (d0/'encoders'/f'{method_slug(m)}.json').is_file()}
    r0 = seed_tables(a0, d0, d0/'transfer', str(path))
    tf = d0/'timings.json'
    s0 = report_lines(a0, d0, table, held, full, tk, info, r0['curves'], r0['aucs'], r0['ci'], r0['dl'], r0['ext'], emb, r0['figs'],
                      json.loads(tf.read_text()) if tf.is_file() else {}, 0., '')
    s0 = [l for l in s0 if l not in (READING_START, READING_END, '_(to be written from the numbers below)_', '## Reading')]
    return [re.sub(r" \(this call's wall time: [^)]*\)", '', '#' + l if l.startswith('## ') else l) for l in s0[1:]]

def kept_readings(path:Path)->tuple:
    "(the seeds' hand-written reading, the single-seed one) of an earlier report; a single-seed report's reading becomes the single-seed one."
    if not path.is_file(): return '', ''
    s = path.read_text()
    if SEEDS_TAG not in s: return '', kept_reading(path)
    return kept_reading(path), _between(s, SEED0_START, SEED0_END)

def machine()->str:
    "This machine in words: CPU model and cores."
    model = ''
    try: model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '')
    except OSError: pass
    return f"{os.cpu_count()} CPU cores" + (f" ({model})" if model else '')

def task_order(t): return (list(TASK_TITLES) + list(EXT_NAMES)).index(t) if t in TASK_TITLES or t in EXT_NAMES else 99
def title(t): return TASK_TITLES.get(t, t)
def cmp_name(r): return f"{r['method']} {'above' if r['diff'] > 0 else 'below'} {REFERENCE} on {title(r['task'])}, {r['protocol']}" + (f", {r['fraction']:.0%} labels" if r['fraction'] < 1 else '')

def seed_table(au:pd.DataFrame, sm:pd.DataFrame, vd:pd.DataFrame, dl:pd.DataFrame, protocol:str, fraction:float, tasks:list)->pd.DataFrame:
    "Rows (task, method): the pooled AUC of each seed (* significant against the reference in that seed's DeLong test, Holm), mean (sd), min-max, the seed-level difference against the reference [95% CI], its Holm p and the verdict."
    seeds = sorted(au.seed.unique())
    rows = []
    for t in tasks:
        for m in METHODS:
            a = au[(au.task == t) & (au.protocol == protocol) & (au.fraction == fraction) & (au.method == m)].set_index('seed')['auc']
            if a.empty: continue
            d = dl[(dl.task == t) & (dl.protocol == protocol) & (dl.fraction == fraction) & (dl.method == m)].set_index('seed')['p_adj']
            r = dict(task=title(t), method=m)
            for s in seeds: r[f'seed {s}'] = '' if s not in a.index else f"{a[s]:.3f}" + ('*' if s in d.index and d[s] <= 0.05 else '')
            q = sm[(sm.task == t) & (sm.protocol == protocol) & (sm.fraction == fraction) & (sm.method == m)].iloc[0]
            r['mean (sd)'] = f"{q['mean']:.3f}" + ('' if pd.isna(q['sd']) else f" ({q['sd']:.3f})")
            r['min-max'] = f"{q['min']:.3f}-{q['max']:.3f}"
            v = vd[(vd.task == t) & (vd.protocol == protocol) & (vd.fraction == fraction) & (vd.method == m)] if len(vd) else vd
            if len(v):
                v = v.iloc[0]
                r[f'diff vs {REFERENCE} [95% CI]'] = f"{v['diff']:+.3f} [{v.diff_lo:+.3f}, {v.diff_hi:+.3f}]"
                r['p (Holm)'] = f"{v.p_adj:.3g}"; r['verdict'] = v.verdict if v.verdict != 'none' else ''
            rows.append(r)
    return pd.DataFrame(rows).fillna('')

def seeds_reading(vd:pd.DataFrame, au:pd.DataFrame, embs:pd.DataFrame, first:int, n_seeds:int)->list:
    "The reading, computed: which comparisons hold in every seed, on average only, or were one run's luck; the best method per task; the embedding geometry."
    L = []
    def item(r):
        return (f"{cmp_name(r)}: mean {r['diff']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}], seed-level p (Holm) {r['p_adj']:.3g}; "
                f"same sign in {r['same_sign']} of {r['n_seeds']} seeds, significant in {r['significant']}")
    def luck(r):   # named by the first seed's direction, the claim a report of that seed alone would make
        return (f"{cmp_name({**r, 'diff': r['first_diff']})} in seed {first} ({r['first_diff']:+.3f}); over the seeds: mean {r['diff']:+.3f} "
                f"[{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}], seed-level p (Holm) {r['p_adj']:.3g}; the same sign as seed {first} in "
                f"{r['same_as_first']} of {r['n_seeds']} seeds")
    if len(vd):
        for v, head in (('every seed', f'**Holds in every seed** (significant in each seed\'s own paired DeLong test, Holm, the same direction):'),
                        ('on average', '**Holds on average only** (the seed-level bootstrap finds it; not every seed does on its own):'),
                        ("one run's luck", f"**One run's luck** (significant in seed {first}'s own test, what a report of that seed alone would claim, but not at the seed level):")):
            d = vd[vd.verdict == v].sort_values(['protocol', 'fraction', 'task'], key=lambda c: c.map(task_order) if c.name == 'task' else c)
            L.append(f"- {head} " + ('none.' if d.empty else ''))
            L += [f"  - {item(r) if v != LUCK else luck(r)}." for _, r in d.iterrows()]
        old = vd[vd.first_significant]
        L.append(f"- Of the {len(old)} significant differences against {REFERENCE} in seed {first} (what a report of that seed alone would claim), "
                 f"{int((old.verdict == 'every seed').sum())} hold in every seed, {int((old.verdict == 'on average').sum())} on average only, "
                 f"{int((old.verdict == LUCK).sum())} were one run's luck.")
    # the best method per task and protocol: seed by seed, and on the mean
    for proto in ('sklearn', 'finetune'):
        d = au[(au.protocol == proto) & (au.fraction == 1.0)]
        if d.empty: continue
        parts = []
        for t in sorted(d.task.unique(), key=task_order):
            x = d[d.task == t]
            best = x.loc[x.groupby('seed')['auc'].idxmax()].set_index('seed').method
            mean = x.groupby('method')['auc'].mean()
            top = mean.idxmax(); k = int((best == top).sum())
            parts.append(f"{title(t)} {top} ({mean[top]:.3f}; the highest in {k} of {best.size} seeds"
                         + (f"; in seed {first} {best[first]}" if first in best.index and best[first] != top else '') + ")")
        L.append(f"- **{proto}**, highest mean AUC over seeds: " + '; '.join(parts) + '.')
    if len(embs):
        r = embs.pivot_table(index='method', columns='seed', values='spearman')
        top = r.idxmax()
        g = r.loc[REFERENCE] if REFERENCE in r.index else None
        if g is not None:
            others = r.drop(index=REFERENCE)
            p = embs[embs.method == REFERENCE].set_index('seed')['p']
            L.append(f"- **Embedding geometry** (pair-Jaccard Spearman rho): {REFERENCE} {g.mean():.2f} (sd {g.std():.2f}; seeds " + ', '.join(f'{v:.2f}' for v in g)
                     + f"), the highest in {int((top == REFERENCE).sum())} of {len(g)} seeds, p < 0.05 in {int((p < 0.05).sum())}; the others' mean "
                     + ', '.join(f"{m} {v:.2f}" for m, v in others.mean(axis=1).items()) + f"; the largest other rho in any seed {others.max().max():.2f}.")
    if len(au) and au.seed.nunique() > 1:
        sd = au.groupby(['task', 'protocol', 'fraction', 'method'])['auc'].std()
        w = sd.idxmax()
        L.append(f"- **Seed-to-seed spread** of the pooled AUC: median sd {sd.median():.3f}, largest {sd.max():.3f} ({w[3]} on {title(w[0])}, {w[1]}"
                 + (f", {w[2]:.0%} labels" if w[2] < 1 else '') + "): a difference between two methods smaller than that is within what a new pretraining seed changes.")
    return L

def seeds_report(path:Path, a, run:Path, seeds:list, shared:Path):
    "The report over seeds, with the first seed's single-seed report as its last section; csv tables in the run folder."
    R = seed_results(a, run, seeds)
    per, au, dl = R['per'], R['aucs'], R['delong']
    if not per: log('no seed has transfer results yet: no report'); return
    done = list(per); first = 0 if 0 in per else done[0]
    sm = seed_summary(au)
    sl = seed_level_tests(R['scores'], n_boot=a.n_boot, seed=a.seed, cases=a.boot_cases) if len(per) > 1 else pd.DataFrame()
    vd = verdicts(sl, dl, first) if len(sl) else pd.DataFrame()
    embs = pd.concat([r['emb'].assign(seed=s) for s, r in per.items() if len(r['emb'])], ignore_index=True) if any(len(r['emb']) for r in per.values()) else pd.DataFrame()
    for f, d in (('seeds_auc.csv', au), ('seeds_summary.csv', sm), ('seeds_delong.csv', dl), ('seeds_tests.csv', vd if len(vd) else sl), ('seeds_embedding.csv', embs)):
        atomic_write_text(run/f, d.to_csv(index=False))
    hand = kept_readings(path)[0]
    spent = {s: time_spent(r['dir'], json.loads((r['dir']/'timings.json').read_text()) if (r['dir']/'timings.json').is_file() else {}) for s, r in per.items()}
    tot = {s: sum(v.values()) for s, v in spent.items()}
    ef = run/'elapsed.json'
    el = json.loads(ef.read_text()) if ef.is_file() else {}
    rep = au.groupby('seed').size()
    L = ['# Real evidence over several pretraining seeds: RealRIN pretraining, four real tasks', '', SEEDS_TAG, '',
         f"Written by `bench/real_evidence.py` on {time.strftime('%Y-%m-%d %H:%M')} (run folder `{run}`). Pretraining seeds with results: "
         f"{done} of {seeds} asked; the same data, settings, folds and fine-tuning seeds for each, only the pretraining seed differs.", '',
         f"**Wall time.** The finished parts took {sum(tot.values()):.1f} min of one core in all, summed over every call and seed "
         f"({', '.join(f'seed {s} {v:.1f} min' for s, v in tot.items())}), on this machine: {machine()}, shared with other jobs, "
         f"{a.threads} thread(s) per process"
         + (f"; the calls of this run folder that finished took {el['seconds']/60:.1f} min of elapsed time ({el['calls']} call(s), the last with --jobs {el.get('jobs', 1)})" if el else '')
         + f". With --jobs {a.jobs}, {a.jobs} parts (one seed's pretraining of one method, or one seed's evaluation) run at once, each a process with {a.threads} thread(s), on {os.cpu_count()} core(s).", '',
         '## Reading', '', READING_START, hand or '_(to be written from the numbers below)_', READING_END, '',
         '## What holds across seeds (computed)', '', *seeds_reading(vd, au, embs, first, len(per)), '',
         '## The test: a hierarchical bootstrap over seeds and cases', '',
         f"Each comparison against {REFERENCE} uses the pretraining seed as the unit: {a.n_boot} draws; a draw resamples the seeds "
         f"with replacement, then the patients (cases on the knee task, whole patients kept together; stratified by class) with replacement "
         + ("once, the same patients for every resampled seed (the seeds score the same patients: seeds and cases are crossed, so a case draw per seed would understate the case variance)"
            if a.boot_cases == 'shared' else 'within each resampled seed (cases nested in seeds)')
         + f", and takes the mean over its seeds of AUC(method) - AUC({REFERENCE}) on each seed's pooled out-of-fold scores (repeats averaged, "
         "one score per patient). Percentile 95% interval (not adjusted for multiplicity); two-sided p from the share of draws on the other side of 0; Holm within task, "
         f"protocol and label fraction. Why not a mixed model with seed and case effects: with {len(per)} seeds the seed variance has {len(per) - 1} degree(s) of "
         "freedom and is estimated unreliably (often at 0, which turns the test back into one about cases); the bootstrap keeps the spread "
         f"of the seeds as they came. A draw leaves out a given seed with probability (1 - 1/S)^S ({(1 - 1/len(per))**len(per):.2f} with "
         f"{len(per)} seeds), so a difference carried by one seed alone stays non-significant. Per-seed tests (`*` in the tables): each seed's own paired DeLong test, Holm, as the single-seed report. "
         "Verdicts: **every seed** = significant in every seed's own test, the same direction; **on average** = the seed-level bootstrap is "
         f"significant, not every seed is; **one run's luck** = significant in seed {first}'s own test (what a report of that seed alone would claim), not at the seed level.", '']
    tasks = sorted(set(au.task), key=task_order)
    main_t = [t for t in tasks if t in TASK_TITLES or t in EXT_NAMES]
    for proto, name in (('sklearn', 'sklearn probe on frozen features'), ('finetune', 'fine-tuning')):
        if proto not in set(au.protocol): continue
        L += [f'## {name}: pooled AUC per seed and across seeds (100% labels; external validation as its two directions)', '',
              md_table(seed_table(au, sm, vd, dl, proto, 1.0, main_t), index=False), '']
    fr = sorted(f for f in au[au.task == a.scarcity_task].fraction.unique() if f < 1)
    if fr:
        L += [f'## Label scarcity across seeds: {title(a.scarcity_task)}', '']
        for proto in ('sklearn', 'finetune'):
            for f in fr:
                t = seed_table(au, sm, vd, dl, proto, f, [a.scarcity_task])
                if len(t): L += [f'{proto}, {f:.0%} labels:', '', md_table(t.drop(columns='task'), index=False), '']
    if len(embs):
        e = embs.pivot_table(index='method', columns='seed', values='spearman').reindex([m for m in METHODS if m in set(embs.method)])
        t = pd.DataFrame(index=e.index)
        for s in e.columns: t[f'rho seed {s}'] = e[s].map(lambda v: f'{v:.2f}')
        t['mean (sd)'] = [f"{m:.2f} ({sd:.2f})" if not pd.isna(sd) else f'{m:.2f}' for m, sd in zip(e.mean(axis=1), e.std(axis=1))]
        pp = embs.pivot_table(index='method', columns='seed', values='p').reindex(e.index)
        t['seeds with p < 0.05'] = (pp < 0.05).sum(axis=1).astype(int).astype(str) + f' of {e.shape[1]}'
        for c, n in (('sim_related', 'related sim (mean)'), ('sim_unrelated', 'unrelated sim (mean)'), ('knn_pair', 'k-NN pair acc (mean)')):
            if c in embs: t[n] = embs.groupby('method')[c].mean().reindex(e.index).map(lambda v: f'{v:.3f}')
        L += ['## Embedding geometry per seed (held-out RealRIN images)', '',
              "Spearman rho between the cosine similarity of two pairs' centroids and their Jaccard index (36 pair-pairs), per pretraining seed.", '',
              md_table(t.reset_index(), index=False), '']
    L += ['## Reproduce', '', '```', 'python bench/real_evidence.py --seeds ' + ','.join(map(str, seeds)) + f' --jobs {a.jobs} --run {run} '
          + ' '.join(f'--{k.replace("_", "-")} {getattr(a, k)}' for k in RESULT_SETTINGS) + f' --repeats {a.repeats} --threads {a.threads}'
          + (f' --tasks {a.tasks}' if a.tasks != ','.join(TASK_TITLES) else '') + (' --no-external' if a.no_external else ''), '```', '',
          "Each seed's folder (`seed_<s>`; seed 0 the run folder itself when it held a single-seed run) is a complete single-seed run; "
          "the tables over seeds: `<run>/seeds_*.csv`. Interrupt and run the same command again to resume (days later too; other settings are refused, named).", '']
    old = earlier_single_seed(path)
    if old is not None:
        same = per[first]['dir'] == run   # the run folder held that single-seed run: it is seed 0 here
        L += ['## Single seed (seed 0, as reported before)', '', SINGLE_START,
              SINGLE_NOTE + ("): it is this run's seed 0 (the run folder held it), whose numbers the tables above read again._" if same else
                             "): another run with the same settings and seed 0 (it names its run folder), not this run's `seed_0`, which was pretrained "
                             "anew: read it as one more pretraining run beside the seeds above, not as their seed 0 column._"),
              '', *old, SINGLE_END]
    else:
        L += [f'## Single seed (seed {first}, as reported before)', '', SINGLE_START,
              f"_Seed {first}'s run, reported as the single-seed report was._", ''] + single_seed_lines(a, per[first]['dir'], first, per[first]['emb'], shared, path) + [SINGLE_END]
    atomic_write_text(path, '\n'.join(L))
    log(f"report: {path}")

if __name__ == '__main__': main()
