"Issue 13 (values that cannot be right, degenerate DeLong) and issue 10 section 6 (Wilcoxon tables honour `correction`) for modan_nb.stats."
import warnings
import numpy as np, pandas as pd, pytest
from modan_nb.stats import (adjust_pvalues, auc_ci, delong_test, delong_vs_reference, fold_aucs, paper_table, summary_aucs,
                            synthetic_score_table, wilcoxon_vs_reference)

Y10 = np.r_[np.ones(10, int), np.zeros(10, int)]
PERFECT = np.arange(20)[::-1].astype(float)

@pytest.fixture(scope='module')
def results():
    sc = synthetic_score_table({'ModAn-MulSupCon': 0.85, 'SimCLR': 0.8, 'Scratch': 0.7}, protocols=('finetune',),
                               n_pos=20, n_neg=20, n_repeats=6, seed=3)
    return fold_aucs(sc)

# --- item 5: no NaN interval, no NaN test, no bare RuntimeWarning
@pytest.mark.parametrize('scores,labels,why', [
    (PERFECT, Y10, 'perfectly separated'), (np.zeros(20), Y10, 'all 20 scores equal'),
    (np.linspace(1, 0, 10), np.r_[1, np.zeros(9, int)], 'only 1 positive')])
@pytest.mark.parametrize('method', ['delong', 'bootstrap'])
def test_auc_ci_degenerate_gives_named_interval(scores, labels, why, method):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ci = auc_ci(labels, scores, method=method, n_boot=200)
    assert np.isfinite(tuple(ci)).all() and 0 <= ci.lower < ci.auc <= ci.upper <= 1 or ci.lower < ci.auc == ci.upper == 1
    assert ci.lower < ci.upper and ci.method.startswith('score interval') and why in ci.method

def test_auc_ci_perfect_lower_bound():
    ci = auc_ci(Y10, PERFECT)
    assert ci.upper == 1 and 0.8 < ci.lower < 0.95

def test_delong_test_zero_variance_is_a_named_score_test():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t = delong_test(Y10, PERFECT, np.zeros(20))
        same = delong_test(Y10, PERFECT, 2*PERFECT)
    assert np.isfinite(t.z) and 0 < t.p < 0.01 and t.ci[0] < t.diff < t.ci[1] and t.method.startswith('score test')
    assert (same.z, same.p) == (0., 1.) and same.ci[0] < 0 < same.ci[1]

def test_delong_table_has_no_nan_with_a_perfect_method():
    sc = synthetic_score_table({'ModAn-MulSupCon': 0.85, 'SimCLR': 0.8}, protocols=('finetune',), n_pos=15, n_neg=15, n_repeats=2, seed=0)
    sc.loc[sc.method == 'ModAn-MulSupCon', 'score'] = sc.loc[sc.method == 'ModAn-MulSupCon', 'label']*10.   # perfect
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dl = delong_vs_reference(sc, level='case')
    assert not dl[['ref_lo', 'ref_hi', 'diff_lo', 'diff_hi', 'z', 'p']].isna().any().any()
    assert dl['ref_ci'].iloc[0].startswith('score interval') and dl['test'].iloc[0] == 'DeLong'   # the difference still has a variance

# --- values that cannot be right are refused
def test_auc_in_percent_refused(results):
    pct = results.assign(auc=results.auc*100)
    with pytest.raises(ValueError, match=r"results column 'auc'.*in percent\? divide by 100.*\d+: \d"): summary_aucs(pct)
    with pytest.raises(ValueError, match='in percent'): wilcoxon_vs_reference(pct)
    summ = summary_aucs(results)
    bad = summ.copy(); bad.loc[bad.index[4], 'auc'] = 1.2
    with pytest.raises(ValueError, match=rf"summary column 'auc'.*{bad.index[4]}: 1.2"): wilcoxon_vs_reference(bad)

def test_paper_table_refuses_auc_and_p_out_of_range(results):
    w = wilcoxon_vs_reference(results)
    with pytest.raises(ValueError, match="stats column 'auc'"): paper_table(w.assign(auc=w.auc*100), 'finetune')
    bad = w.copy(); bad.loc[bad.index[1], 'p_adj'] = 3.
    with pytest.raises(ValueError, match=r"stats column 'p_adj'.*1: 3"): paper_table(bad, 'finetune')

@pytest.mark.parametrize('p,match', [([0.01, 1.5, 0.3], '1: 1.5'), ([-0.1, 0.2], '0: -0.1'), ([5., 20.], 'in percent')])
def test_adjust_pvalues_refuses_out_of_range(p, match):
    with pytest.raises(ValueError, match=match): adjust_pvalues(p)

def test_unknown_correction_named():
    with pytest.raises(ValueError, match="unknown correction 'holmes'"): adjust_pvalues([0.1], 'holmes')

@pytest.mark.parametrize('call', [
    lambda: auc_ci(Y10, PERFECT + np.r_[np.zeros(19), 30.], alpha=0.95),
    lambda: delong_test(Y10, PERFECT, np.zeros(20), alpha=0.95)])
def test_alpha_given_as_a_level_refused(call):
    with pytest.raises(ValueError, match=r'alpha=0.95 looks like a confidence level.*pass alpha=0.05'): call()

def test_paper_table_alpha_and_bad_alpha(results):
    w = wilcoxon_vs_reference(results)
    with pytest.raises(ValueError, match='pass alpha=0.05'): paper_table(w, 'finetune', alpha=0.95)
    for a in (0, 1.5, -0.05, 'five', None):
        with pytest.raises(ValueError, match='alpha must be'): auc_ci(Y10, PERFECT, alpha=a)

# --- issue 10 section 6: the Wilcoxon table honours `correction`; the alternative is selectable
def test_wilcoxon_table_honours_correction(results):
    raw = wilcoxon_vs_reference(results, correction='none')
    assert (raw['p_adj'].fillna(-1) == raw['p'].fillna(-1)).all() and (raw['correction'] == 'none').all()
    bon = wilcoxon_vs_reference(results, correction='bonferroni')
    tab = paper_table(bon, 'finetune')
    assert tab.attrs['p_col'] == 'p_adj' and tab.attrs['correction'] == 'bonferroni'
    p = raw.set_index('method')['p']
    for m in ('SimCLR', 'Scratch'):
        assert tab.attrs['p'].loc[m, 'task'] == pytest.approx(min(1., 2*p[m]))
    assert paper_table(raw, 'finetune').attrs['p'].loc['SimCLR', 'task'] == pytest.approx(p['SimCLR'])

def test_wilcoxon_alternative(results):
    two = wilcoxon_vs_reference(results).set_index('method')
    one = wilcoxon_vs_reference(results, alternative='greater').set_index('method')
    assert (one['alternative'].dropna() == 'greater').all() and (two['alternative'].dropna() == 'two-sided').all()
    d = summary_aucs(results).pivot(index='repeat', columns='method', values='auc')
    from scipy.stats import wilcoxon
    assert one.loc['Scratch', 'p'] == wilcoxon(d['ModAn-MulSupCon'], d['Scratch'], alternative='greater').pvalue
    with pytest.raises(ValueError, match="alternative must be"): wilcoxon_vs_reference(results, alternative='one-sided')

def test_fold_auc_with_one_positive_case_has_no_runtime_warning():
    sc = pd.DataFrame(dict(method='a', task='t', protocol='p', fraction=1., fold=0, repeat=0, label=[1, 0, 0, 0], score=[.9, .1, .5, .3]))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert fold_aucs(sc)['auc'].tolist() == [1.0]
