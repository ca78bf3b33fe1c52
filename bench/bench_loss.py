"""Benchmark of modan_nb.losses: forward + backward time and memory of the Jaccard-weighted SupCon loss against
single-label SupCon (ours, same core; and Khosla et al.'s reference code) and a per-anchor Python loop of the formula.

Run: python bench/bench_loss.py [--threads 1] [--sizes 512 2048] [--dim 128]
"""
import argparse, math, platform, statistics, time
import torch
import torch.nn.functional as F
from modan_nb.losses import JaccardSupConLoss, SupConLoss
from modan_nb.metadata import MetadataEncoder
from modan_nb.synth import synth_classes

T, TAU = 0.07, 0.3

def khosla_supcon(features, labels, temperature=T, base_temperature=T):
    "Khosla et al. (2020) SupConLoss, contrast_mode='all' (their published code, features normalised first)."
    features = F.normalize(features, dim=-1)
    bsz, n_views = features.shape[:2]
    mask = torch.eq(labels[:, None], labels[None]).float()
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
    mask = mask.repeat(n_views, n_views)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(bsz * n_views).view(-1, 1), 0)
    mask = mask * logits_mask
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
    return (-(temperature / base_temperature) * (mask * log_prob).sum(1) / mask.sum(1)).mean()

def loop_loss(z, y, anchors=None):
    "The formula one anchor at a time (Python loop; each anchor's row done with tensor ops): sum of l_a over `anchors`."
    N, V, D = z.shape
    zf = F.normalize(z.transpose(0, 1).reshape(-1, D), dim=1)
    yf = y.repeat(V, 1)
    M = zf.shape[0]
    total, n = zf.new_zeros(()), 0
    for a in (range(M) if anchors is None else anchors):
        others = torch.arange(M) != a
        s = zf[a] @ zf[others].T / T
        lse = torch.logsumexp(s, 0)
        inter = (yf[a] * yf[others]).sum(1)
        w = inter / (yf[a].sum() + yf[others].sum(1) - inter)
        P = w >= TAU
        if P.any(): total = total - (w[P] * (s[P] - lse)).sum() / P.sum(); n += 1
    return total, n

def fwd_bwd(fn, z):
    z.grad = None
    loss = fn(z)
    loss.backward()
    return loss

def timeit(fn, z, reps):
    fwd_bwd(fn, z)  # warm-up
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fwd_bwd(fn, z); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def saved_bytes(fn, z):
    "Bytes of the distinct tensors autograd keeps for the backward pass (what lives between forward and backward)."
    seen = {}
    def pack(t):
        try: seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        except Exception: pass
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn(z)
    del loss
    return sum(seen.values())

def cuda_peak(fn, z):
    z = z.detach().cuda().requires_grad_()
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    fwd_bwd(fn, z); torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base

def synthrin_labels(n, seed=0):
    meta = synth_classes().loc[lambda d: d.index.repeat(80)].sample(n, random_state=seed, replace=True)
    enc = MetadataEncoder().fit(meta)
    y = enc.encode(meta)
    pair = torch.tensor((meta.modality + ' ' + meta.anatomy).astype('category').cat.codes.to_numpy(), dtype=torch.long)
    return y, pair

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (the dev machine is shared)')
    p.add_argument('--sizes', type=int, nargs='+', default=[512, 2048], help='M = N * V views')
    p.add_argument('--dim', type=int, default=128)
    p.add_argument('--loop-anchors', type=int, default=128, help='anchors timed in the loop at M > 512 (extrapolated)')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {a.threads} thread(s); V=2, D={a.dim}, "
          f"T={T}, tau={TAU}; SynthRIN-like labels (10 modality/anatomy pairs, K=11); median of repeated fwd+bwd")
    for M in a.sizes:
        N, V = M // 2, 2
        y, pair = synthrin_labels(N)
        z = torch.randn(N, V, a.dim, requires_grad=True)
        jac, sup = JaccardSupConLoss(T, TAU), SupConLoss(T)
        fns = {'JaccardSupConLoss (ours)': lambda z: jac(z, y), 'SupConLoss (ours, same core)': lambda z: sup(z, pair),
               'SupCon, Khosla et al. code': lambda z: khosla_supcon(z, pair)}
        reps = 7 if M <= 512 else 3
        times = {k: timeit(f, z, reps) for k, f in fns.items()}
        # the loop: every anchor at M <= 512, else a subset, extrapolated linearly in the number of anchors
        sub = None if M <= 512 else list(range(0, M, M // a.loop_anchors))[:a.loop_anchors]
        z.grad = None; t0 = time.perf_counter()
        tot, n = loop_loss(z, y, sub); (tot / n).backward()
        t_loop = (time.perf_counter() - t0) * (1 if sub is None else M / len(sub))
        full = JaccardSupConLoss(T, TAU)(z, y).item()
        if sub is None: assert abs(tot.item() / n - full) < 1e-4 * max(1, abs(full)), (tot.item() / n, full)
        loop_note = 'all anchors' if sub is None else f'{len(sub)} of {M} anchors timed, x{M / len(sub):g} extrapolated'
        print(f"\nM = N*V = {M} (N={N}, V={V}, D={a.dim}); M^2 float32 = {M * M * 4 / 2**20:.1f} MiB")
        for k, t in times.items(): print(f"  {k:32s} {t * 1e3:9.1f} ms")
        print(f"  {'per-anchor Python loop':32s} {t_loop * 1e3:9.1f} ms  ({loop_note})")
        base = times['SupCon, Khosla et al. code']
        print(f"  ratio Jaccard / Khosla SupCon      {times['JaccardSupConLoss (ours)'] / base:6.2f}x   (aim <= 1.3x)")
        print(f"  ratio Jaccard / our SupCon         {times['JaccardSupConLoss (ours)'] / times['SupConLoss (ours, same core)']:6.2f}x")
        print(f"  speed-up over the loop             {t_loop / times['JaccardSupConLoss (ours)']:6.1f}x   (aim >= 20x)")
        print("  memory (units of one M x M float32 matrix):")
        for k, f in fns.items():
            sb = saved_bytes(f, z)
            line = f"    {k:32s} kept for backward {sb / 2**20:7.1f} MiB ({sb / (M * M * 4):4.1f} M^2)"
            if torch.cuda.is_available():
                yc, pc = y.cuda(), pair.cuda()
                g = {'JaccardSupConLoss (ours)': lambda z: jac(z, yc), 'SupConLoss (ours, same core)': lambda z: sup(z, pc)}.get(k)
                if g is not None: line += f", CUDA peak {cuda_peak(g, z) / 2**20:7.1f} MiB"
            print(line)
        print(f"  no (M, M, K) tensor: K = {y.shape[1]}, M*M*K float32 would be {M * M * y.shape[1] * 4 / 2**20:.0f} MiB")

if __name__ == '__main__': main()
