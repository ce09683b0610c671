import numpy as np, sys, itertools
sys.path.insert(0, '/work/main')
from orchestrator.router import choose_threshold, FALLBACK
z = np.load('/tmp/rr/comps.npz' if len(sys.argv) < 2 else sys.argv[1], allow_pickle=True)
agents = np.array(z['agents'], dtype=object); y = z['labels'].astype(object); g = z['dgold'].astype(object)
g = np.where(g == 'fallback', FALLBACK, g)
ALL = ['margin', 'intent', 'knn', 'maha']
def run(keys, w=None, verbose=False):
    w = w or [1.0] * len(keys)
    ins = y != FALLBACK
    best = z['oof_logit'].argmax(1); rows = np.arange(len(y))
    cal = {}
    for k in keys:
        v = z['oof_' + k][rows, best][ins]; v = v[v > -1e8]
        cal[k] = (v.mean(), v.std() + 1e-6)
    def score(p):
        return sum(wi * (z[p + k] - cal[k][0]) / cal[k][1] for wi, k in zip(w, keys))
    so = score('oof_')[rows, best]
    thr = choose_threshold(agents[best], so, y)
    db = z['dev_logit'].argmax(1); sd = score('dev_')[np.arange(len(g)), db]
    pred = np.where(sd >= thr, agents[db], FALLBACK)
    i = g != FALLBACK
    acc = (pred[i] == g[i]).mean(); rec = (pred[~i] == FALLBACK).mean()
    # OOF at thr
    po = np.where(so >= thr, agents[best], FALLBACK)
    oacc = (po[ins] == y[ins]).mean(); orec = (po[~ins] == FALLBACK).mean()
    # best dev curve acc at rec>=0.9
    ts = np.unique(sd); bestacc = 0
    for t in ts[::3]:
        p = np.where(sd >= t, agents[db], FALLBACK)
        if (p[~i] == FALLBACK).mean() >= 0.9: bestacc = max(bestacc, (p[i] == g[i]).mean())
    return dict(keys='+'.join(keys), w=w, oof=(round(oacc, 4), round(orec, 3)), dev=(round(acc, 4), round(rec, 3)), dev_best_at90=round(bestacc, 4))
for r in range(1, 5):
    for ks in itertools.combinations(ALL, r):
        print(run(list(ks)))

def curve_best(sc, pred, gold, r=0.90):
    i = gold != FALLBACK; corr = (pred == gold) & i
    o = np.argsort(sc); s = sc[o]; ts = np.unique(s); k = np.searchsorted(s, ts)
    ro = np.concatenate([[0], np.cumsum(~i[o])])[k] / (~i).sum()
    acc = (corr.sum() - np.concatenate([[0], np.cumsum(corr[o])])[k]) / i.sum()
    m = ro >= r
    return acc[m].max()
print('---- OOF acc@r90 / r92 / r88 vs dev')
rows = np.arange(len(y)); best = z['oof_logit'].argmax(1); db = z['dev_logit'].argmax(1)
ins = y != FALLBACK
def zs(k, p, b, rr):
    v = z['oof_' + k][rows, best][ins]; v = v[v > -1e8]
    return (z[p + k][rr, b] - v.mean()) / v.std()
import itertools
res = []
for wm, wi, wk, wh in itertools.product([0, 0.5, 1, 1.5, 2], repeat=4):
    if wm + wi + wk + wh == 0: continue
    W = dict(margin=wm, intent=wi, knn=wk, maha=wh)
    so = sum(W[k] * zs(k, 'oof_', best, rows) for k in W if W[k])
    sd = sum(W[k] * zs(k, 'dev_', db, np.arange(len(g))) for k in W if W[k])
    o = [curve_best(so, agents[best], y, r) for r in (0.88, 0.9, 0.92)]
    d = [curve_best(sd, agents[db], g, r) for r in (0.88, 0.9, 0.92)]
    res.append((np.mean(o), W, o, d))
res.sort(key=lambda t: -t[0])
for r in res[:25]: print(round(r[0], 4), r[1], np.round(r[2], 4), np.round(r[3], 4))
