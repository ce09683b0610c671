import json, numpy as np, time
d = json.load(open('/tmp/clinc_full/data_full.json'))
dom = json.load(open('/tmp/clinc_full/domains.json'))
i2d = {i: k for k, v in dom.items() for i in v}
texts = json.load(open('/tmp/ood/texts.json')); E = np.load('/tmp/ood/emb.npy')
idx = {t: i for i, t in enumerate(texts)}
W = np.load('/tmp/ood/wemb.npy'); wiki = json.load(open('/tmp/ood/wiki.json'))
def split(name, oos=True):
    rows = [(t, i2d[i]) for t, i in d[name]]
    if oos: rows += [(t, 'fallback') for t, _ in d['oos_' + name]]
    return rows
def emb(rows): return E[[idx[t] for t, _ in rows]]
DOMAINS = sorted(dom)
def ldo_rotations(n, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(DOMAINS, n, replace=False).tolist()) for _ in range(k)]
def metrics(pred, gold):
    pred = np.asarray(pred, object); gold = np.asarray(gold, object)
    ins = gold != 'fallback'
    return round(float((pred[ins] == gold[ins]).mean()), 4), round(float((pred[~ins] == 'fallback').mean()), 4)
def curve(best, score, gold, recalls=(0.85, 0.9, 0.95)):
    """best in-scope acc at recall >= R (oracle threshold) and the acc/recall at each threshold"""
    gold = np.asarray(gold, object); best = np.asarray(best, object); ins = gold != 'fallback'
    out = {}
    ths = np.unique(score)
    o = np.argsort(score); s = score[o]; below = np.searchsorted(s, ths)
    rej_oos = np.concatenate([[0], np.cumsum(~ins[o])])[below]
    rej_ok = np.concatenate([[0], np.cumsum((best == gold)[o] & ins[o])])[below]
    acc = ((best == gold) & ins).sum() - rej_ok; acc = acc / ins.sum(); rec = rej_oos / (~ins).sum()
    for R in recalls:
        m = rec >= R
        out[R] = round(float(acc[m].max()), 4) if m.any() else None
    return out
