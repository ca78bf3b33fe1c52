"Real-data check: modan_nb.stats against R pROC on its aSAH data (roc.test DeLong Z, p, CI of the difference; ci.auc)."
import numpy as np, pandas as pd, pytest
from modan_nb.core import shared_data_dir
from modan_nb.stats import ASAH_ROC_TEST, ASAH_CI_AUC, auc_ci, check_asah, delong_test, delong_roc_variance, delong_naive

@pytest.fixture(scope='module')
def asah():
    root = shared_data_dir()
    path = None if root is None else root/'asah'/'asah.csv'
    if path is None or not path.is_file(): pytest.skip('shared aSAH data absent (set MODAN_SHARED_DATA)')
    df = pd.read_csv(path)
    assert len(df) == 113 and set(df.outcome) == {'Good', 'Poor'}
    return df

def _y(df): return (df['outcome'] == 'Poor').astype(int).values   # pROC: Poor = cases, Good = controls, direction '<'

@pytest.mark.parametrize('c1,c2,a1,a2,z,p,lo,hi', ASAH_ROC_TEST)
def test_roc_test_delong(asah, c1, c2, a1, a2, z, p, lo, hi):
    t = delong_test(_y(asah), asah[c1], asah[c2])
    assert t.auc1 == pytest.approx(a1, abs=5e-8) and t.auc2 == pytest.approx(a2, abs=5e-8)
    assert t.z == pytest.approx(z, abs=1e-10)
    assert t.p == pytest.approx(p, abs=1e-10)
    assert t.ci[0] == pytest.approx(lo, abs=1e-10) and t.ci[1] == pytest.approx(hi, abs=1e-10)

def test_ci_auc(asah):
    y = _y(asah)
    lo, auc, hi = ASAH_CI_AUC['ndka']
    assert tuple(auc_ci(y, asah['ndka'])) == pytest.approx((auc, lo, hi), abs=1e-10)
    w = (asah['gender'] == 'Female').values
    lo, auc, hi = ASAH_CI_AUC['ndka, women']
    assert tuple(auc_ci(y[w], asah['ndka'][w])) == pytest.approx((auc, lo, hi), abs=1e-9)

def test_fast_matches_plain_on_asah(asah):
    y = _y(asah)
    S = asah[['wfns', 's100b', 'ndka']].values.T   # wfns has heavy ties (5 levels)
    from modan_nb.stats import delong_placements
    for a, b in zip(delong_placements(y, S), delong_naive(y, S)): np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)

def test_check_asah_table(asah):
    res = check_asah()
    assert (res.abs_diff <= res.tol).all() and len(res) == 3*6 + 2*3
