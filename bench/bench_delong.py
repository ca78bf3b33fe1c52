"""Fast DeLong (Sun & Xu 2014, midranks, O(N log N)) against the plain O(m*n) definition.

Run: python bench/bench_delong.py [--n 100000] [--budget 3]
Prints the fast algorithm's time on n cases (two correlated methods, as in the paired test), then the plain version's
time on the largest n it finishes within about `budget` seconds, both algorithms' times at that n, and their agreement.
"""
import argparse, time
import numpy as np
from modan_nb.stats import binormal_scores, delong_placements, delong_naive

def timed(f, *a, reps=1):
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter(); out = f(*a); best = min(best, time.perf_counter() - t0)
    return best, out

def main(n=100_000, budget=3.0):
    y, S = binormal_scores(n//2, n - n//2, auc=[0.8, 0.75], rho=0.5, seed=0)
    t_fast, (aucs, cov, *_) = timed(delong_placements, y, S, reps=3)
    print(f"fast DeLong, n = {n:,} cases, 2 methods: {t_fast*1e3:.1f} ms  (AUCs {aucs.round(4)}, var {np.diag(cov)})")
    m, last = 500, None
    while True:  # grow n for the plain version until one call takes about `budget` seconds
        y, S = binormal_scores(m//2, m - m//2, auc=[0.8, 0.75], rho=0.5, seed=1)
        t_naive, ref = timed(delong_naive, y, S)
        last = (m, t_naive, y, S, ref)
        if t_naive > budget/4 or m >= n: break
        m *= 2
    m, t_naive, y, S, ref = last
    t_fast_m, fast = timed(delong_placements, y, S, reps=3)
    err = max(np.abs(a - b).max() for a, b in zip(fast, ref))
    print(f"plain O(m*n) DeLong, n = {m:,}: {t_naive:.2f} s;  fast at the same n: {t_fast_m*1e3:.2f} ms  "
          f"-> {t_naive/t_fast_m:,.0f}x faster")
    print(f"max |fast - plain| over AUCs, covariance and placements at n = {m:,}: {err:.1e}")
    est = t_naive*(n/m)**2
    print(f"plain version extrapolated to n = {n:,} (quadratic): ~{est:,.0f} s, "
          f"{est/t_fast:,.0f}x the fast one; its psi array would need {2*(n/2)**2*8/1e9:,.0f} GB")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=100_000); ap.add_argument('--budget', type=float, default=3.0)
    a = ap.parse_args(); main(a.n, a.budget)
