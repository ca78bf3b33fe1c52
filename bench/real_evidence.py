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
"""
from __future__ import annotations
import argparse, copy, json, os, re, shutil, sys, time
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
    print(time.strftime('%H:%M:%S'), *a, flush=True)

def method_slug(m:str)->str: return m.lower().replace(' ', '_').replace('-', '_')

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
    "Pretrain (or load) one method's encoder; its file, with the timing in `<slug>.json`."
    from modan_nb.core import seed_everything
    from modan_nb.models import create_encoder, save_encoder
    from modan_nb.learner import pretrain
    slug = method_slug(method)
    path, info_f = run/'encoders'/f'{slug}.pth', run/'encoders'/f'{slug}.json'
    if path.is_file(): return path
    path.parent.mkdir(parents=True, exist_ok=True)
    seed_everything(a.seed)
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
                         path=pdir, resume=True, seed=a.seed, device='cpu', progress=False)
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
    from modan_nb import data
    missing = [f for f in ('read_busbra', 'read_kneeoa', 'check_duplicates') if not hasattr(data, f)]
    if missing: raise SystemExit(f"modan_nb.data has no {missing}: merge the 'data' branch (issue 11 §1) first")
    readers = {'busi': lambda: data.read_busi(shared/'busi', include_normal=False), 'busbra': lambda: data.read_busbra(shared/'busbra'),
               'ddti': lambda: data.read_ddti(shared/'ddti'), 'knee': lambda: data.read_kneeoa(shared/'kneeoa')}
    bad = [n for n in names if n not in readers]
    if bad: raise ValueError(f"unknown task(s) {bad}; known: {list(readers)}")
    out = {}
    for t in names:
        df = readers[t]()
        d = data.check_duplicates(df, 'drop').reset_index(drop=True)
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
    from modan_nb.transfer import run_transfer, task_inputs
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
        au, _ = run_transfer({m: enc}, df, task, protocols=[protocol], n_folds=n_folds, repeats=repeats, fractions=list(fractions),
                             size=a.size, epochs=a.ft_epochs, bs=a.ft_bs, lr=a.ft_lr, step_size=max(1, a.ft_epochs - 1),
                             seed=a.seed, out_dir=out_dir, resume=True, device='cpu', inputs=inputs, duplicates=duplicates)
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
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--run', default=None, help='run folder (default data/runs/real_evidence)')
    ap.add_argument('--report', default=str(BENCH/'real_evidence.out.md'), help="the Markdown report ('' for none)")
    ap.add_argument('--shared', default=None, help='the shared data folder (default: modan_nb.core.shared_data_dir())')
    ap.add_argument('--fresh', action='store_true', help='delete an earlier run in the run folder first')
    ap.add_argument('--report-only', action='store_true', help='train nothing: rewrite the report from the units finished so far')
    return ap.parse_args(argv)

def check_settings(run:Path, a):
    f = run/'settings.json'
    now = {k: getattr(a, k) for k in RESULT_SETTINGS}
    if f.is_file():
        old = json.loads(f.read_text())
        diff = {k: (old.get(k), now[k]) for k in now if old.get(k) != now[k]}
        if diff: raise SystemExit(f"{run} holds a run with other settings {diff} (old, new): pass --fresh, or another --run")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(now, indent=1))

def cap_cases(df:pd.DataFrame, max_cases:int, seed:int)->pd.DataFrame:
    "At most about `max_cases` rows: a stratified sample of whole patients (`data.subsample_fraction`); the table itself when smaller."
    if not max_cases or len(df) <= max_cases: return df
    from modan_nb.data import subsample_fraction
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
    a = parse(argv)
    torch.set_num_threads(a.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(a.threads)
    from modan_nb.core import shared_data_dir, runs_dir
    shared = Path(a.shared) if a.shared else shared_data_dir()
    if shared is None or not (shared/'realrin.csv').is_file(): sys.exit("the shared data folder (with realrin.csv) is not here: nothing to benchmark")
    run = Path(a.run) if a.run else runs_dir('real_evidence')
    if a.fresh and run.exists(): shutil.rmtree(run)
    check_settings(run, a)
    T0 = time.time()
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
    for k, (proto, ts, fr, r, nf) in enumerate([] if a.report_only else stages(a, tasks)):
        t0 = time.time()
        for t in ts: evaluate(encoders, tasks[t], t, out, a, proto, nf, fr, r)
        dt = time.time() - t0
        spent(f'stage {k+1}: {proto} on {"+".join(ts)}, fractions {"/".join(f"{x:g}" for x in fr)}, repeats <= {r}', dt)
        if dt > 1:
            log(f"stage {k+1}: {proto} on {', '.join(ts)}, fractions {fr}, repeats {r}: {dt:.0f} s ({time.time()-T0:.0f} s since start)")
            if a.report: finish(a, run, out, table, held, full, tasks, info, emb, timings, time.time() - T0, quiet=True)
    finish(a, run, out, table, held, full, tasks, info, emb, timings, time.time() - T0)
    log(f"wall time of this call: {time.time()-T0:.0f} s")

def finish(a, run, out, table, held, full, tasks, info, emb, timings, wall, quiet=False):
    "Statistics, figures and the report from every complete unit so far."
    aucs, scores = complete_results(out, list(METHODS))
    if scores.empty: return
    ext_s = scores[scores.task == 'external']
    aucs = aucs.copy(); scores = scores[scores.task != 'external']; aucs = aucs[aucs.task != 'external']
    ci, dl = ci_table(scores), delong_table(scores)
    ci.to_csv(run/'auc_ci.csv', index=False); dl.to_csv(run/'delong.csv', index=False)
    ext = external_results(ext_s)
    if len(ext): ext.to_csv(run/'external.csv', index=False)
    curves = loss_curves(run)
    # the committed report's figures go with the docs' figures (nbs/images/); another report's beside it; no report: the run folder
    committed = a.report and Path(a.report).resolve() == (BENCH/'real_evidence.out.md').resolve()
    fd = BENCH.parent/'nbs'/'images' if committed else Path(a.report).parent if a.report else run
    fd.mkdir(parents=True, exist_ok=True)
    figs, link = {}, (lambda f: os.path.relpath(fd/f, Path(a.report).resolve().parent) if a.report else f)
    if len(curves): plot_curves(curves, fd/'real_evidence_loss.png'); figs['Pretraining loss per epoch'] = link('real_evidence_loss.png')
    plot_auc(ci, fd/'real_evidence_auc.png'); figs['Pooled AUC with 95% DeLong intervals (100% labels)'] = link('real_evidence_auc.png')
    scar = ci[ci.task == a.scarcity_task]
    if scar.fraction.nunique() > 1:
        plot_scarcity(scar, fd/'real_evidence_scarcity.png', TASK_TITLES[a.scarcity_task]); figs['Label scarcity'] = link('real_evidence_scarcity.png')
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
    from modan_nb.experiments import software_versions
    reading, spent = kept_reading(path), time_spent(run, timings)
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
    atomic_write_text(path, '\n'.join(L))

if __name__ == '__main__': main()
