"Issue 10 section 5: the published study reproduced from the authors' own predictions (shared copy; skipped where absent)."
import numpy as np, pandas as pd, pytest
from modan_nb.published import (PUBLISHED_RUNS, combined_tests, compare_with_printed, fold_auc_cis, fold_path, published_dir,
                                read_fold_csv, read_printed_tables, read_published_results, read_published_stats,
                                reproduce_published, variance_components, write_published_layout)
from modan_nb.stats import fold_aucs

@pytest.fixture(scope='module')
def root():
    try: return published_dir()
    except FileNotFoundError as e: pytest.skip(f'published results absent: {e}')

@pytest.fixture(scope='module')
def scores(root): return read_published_results(root)

@pytest.fixture(scope='module')
def repro(scores): return reproduce_published(scores)

def test_reader_layout(scores):
    assert len(scores) == 215_000 and scores.groupby(['method', 'protocol']).ngroups == 10
    assert set(scores.task) == {'acl', 'breast', 'thyroid'} and sorted(scores.repeat.unique()) == list(range(1, 11))
    n = scores.groupby(['task', 'method', 'protocol', 'repeat']).size().groupby('task').unique()
    assert {t: list(v) for t, v in n.items()} == {'acl': [1021], 'breast': [780], 'thyroid': [349]}

@pytest.mark.parametrize('protocol,fname', [('finetune', 'finetune_tables.txt'), ('linear', 'linear_probing_tables.txt')])
def test_published_table_reproduced(root, repro, protocol, fname):
    printed = read_printed_tables(root/fname)
    assert len(printed) == 15
    cmp = compare_with_printed(repro, {protocol: printed})
    for _, r in cmp.iterrows():
        assert r['auc'] == r['auc_printed'], f"{protocol} {r['task']} {r['method']}: mean AUC {r['auc']} vs printed {r['auc_printed']}"
        if r['method'] != 'ModAn-MulSupCon':
            assert r['statistic'] == r['statistic_printed'] and r['p'] == r['p_printed'], (protocol, r['task'], r['method'])
    assert cmp.auc_match.all() and cmp.p_match.all()

def test_two_sided_beside(repro):
    r = repro.set_index(['protocol', 'task', 'method'])
    assert r.loc[('finetune', 'acl', 'ImageNet'), 'p'] == 2**-10 and r.loc[('finetune', 'acl', 'ImageNet'), 'p_two_sided'] == 2**-9
    assert r.loc[('finetune', 'breast', 'SimCLR'), 'p'] == 1.0 and r.loc[('finetune', 'breast', 'SimCLR'), 'p_two_sided'] == 2**-9

def test_fold_aucs_equal_their_stats_csv(root, scores):
    m = read_published_stats(root).merge(fold_aucs(scores), on=['method', 'task', 'protocol', 'repeat', 'fold'])
    assert len(m) == 1500 and (m.auc_x - m.auc_y).abs().max() < 1e-12

def test_beyond_the_paper_numbers(scores):
    cis = fold_auc_cis(scores)
    assert len(cis) == 1500 and (cis.ci == 'DeLong').all()
    vc = variance_components(cis)
    assert vc.share_fold.median() > 0.5 and (vc.se_mean_delong/vc.sd_summary).median() > 1.5
    ct = combined_tests(cis).set_index(['protocol', 'task', 'method'])
    assert ct.loc[('finetune', 'acl', '165-class'), 'p_two_sided'] < 1e-6
    assert ct.loc[('finetune', 'thyroid', 'SimCLR'), 'p_two_sided'] > 0.05    # Wilcoxon: 0.00098
    assert ct.loc[('linear', 'breast', 'SimCLR'), 'diff'] < 0 and ct.loc[('linear', 'breast', 'SimCLR'), 'p_two_sided'] < 0.01

def test_reader_errors_name_the_file(tmp_path):
    sc = pd.DataFrame(dict(method='SimCLR', task='acl', protocol='finetune', repeat=1, fold=1, score=[0.2, 0.8, 0.4], label=[0, 1, 0]))
    runs = {'miniRIN_HML_simCLR_1_lr005': PUBLISHED_RUNS['miniRIN_HML_simCLR_1_lr005']}
    write_published_layout(sc, tmp_path, runs)
    kw = dict(tasks=('acl',), runs=runs, repeats=(1,), folds=(1,))
    assert read_published_results(tmp_path, **kw).score.tolist() == [0.2, 0.8, 0.4]
    f = fold_path(tmp_path, 'acl', 'miniRIN_HML_simCLR_1_lr005', 1, 1)
    f.write_text('preds,labels\n0.2,0\n0.8,yes\n')
    with pytest.raises(ValueError, match=rf"{f.name}, line 3: not a number"): read_published_results(tmp_path, **kw)
    f.unlink()
    with pytest.raises(FileNotFoundError, match='fold_1.csv'): read_published_results(tmp_path, **kw)
    with pytest.raises(FileNotFoundError, match='missing predictions file'): read_fold_csv(f)
