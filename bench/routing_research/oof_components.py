"""Research harness: OOF and dev components of orchestrator.router with extra OOS signals."""
import json, sys, time, os
import numpy as np
sys.path.insert(0, '/work/main')
from orchestrator import router as R
from orchestrator.encoder import load_encoder
from sklearn.cluster import KMeans
from sklearn.covariance import LedoitWolf

D = '/work/shared/datasets/clinc150/'
ex = [json.loads(l) for l in open(D + 'examples.jsonl')]
dv = [json.loads(l) for l in open(D + 'dev_cases.jsonl')]
texts = [e['text'] for e in ex]
labels = np.asarray([R.FALLBACK if e['agent'] == 'fallback' else e['agent'] for e in ex], dtype=object)
dtexts = [d['text'] for d in dv]
dgold = np.asarray([d['expected'] for d in dv], dtype=object)

enc = load_encoder()
if os.path.exists('/tmp/rr/emb.npy'):
    emb = np.load('/tmp/rr/emb.npy'); demb = np.load('/tmp/rr/demb.npy')
else:
    t = time.time(); emb = enc.encode(texts); demb = enc.encode(dtexts); print('encode', time.time() - t)
    np.save('/tmp/rr/emb.npy', emb); np.save('/tmp/rr/demb.npy', demb)

MAHA_PER = int(os.environ.get('MAHA_PER', 20))

def maha(train_emb, train_labels, agents, test_emb, seed=0):
    """-min Mahalanobis (tied LW covariance) to fine KMeans clusters of each agent."""
    cents, owners, resid = [], [], []
    for j, a in enumerate(agents):
        X = train_emb[train_labels == a]
        k = max(1, min(len(X) // MAHA_PER, 50))
        km = KMeans(k, n_init=1, random_state=seed).fit(X) if k > 1 else None
        c = km.cluster_centers_ if km is not None else X.mean(0, keepdims=True)
        lab = km.labels_ if km is not None else np.zeros(len(X), int)
        cents.append(c); owners += [j] * len(c); resid.append(X - c[lab])
    cents = np.vstack(cents); owners = np.asarray(owners); resid = np.vstack(resid)
    lw = LedoitWolf().fit(resid)
    P = lw.precision_
    L = np.linalg.cholesky(P)
    tc = cents @ L; tq = test_emb.astype(np.float64) @ L
    d2 = (tq ** 2).sum(1)[:, None] - 2 * tq @ tc.T + (tc ** 2).sum(1)[None]
    out = np.full((len(test_emb), len(agents)), -np.inf)
    for j in range(len(agents)):
        out[:, j] = -np.sqrt(np.maximum(d2[:, owners == j].min(1), 0))
    return out

def comps(tr_idx, te_texts, te_emb):
    m = R._Model([texts[i] for i in tr_idx], labels[tr_idx], emb[tr_idx], 0)
    c = m.components(te_texts, te_emb)
    c['maha'] = maha(emb[tr_idx], labels[tr_idx], m.agents, te_emb)
    return m.agents, c

class Fake(R.Router):
    def __init__(self):
        self._texts = texts; self._labels = labels; self._emb = emb; self.seed = 0

if __name__ == '__main__':
    from joblib import Parallel, delayed
    f = Fake()
    splits = f._folds(5)
    t = time.time()
    jobs = [delayed(comps)(tr, [texts[i] for i in te], emb[te]) for tr, te in splits]
    jobs.append(delayed(comps)(np.arange(len(texts)), dtexts, demb))
    res = Parallel(n_jobs=2)(jobs)
    print('fits', time.time() - t)
    agents = res[-1][0]
    keys = list(res[-1][1])
    oof = {k: np.full((len(texts), len(agents)), -1e9) for k in keys}
    for (tr, te), (ag, c) in zip(splits, res[:-1]):
        assert ag == agents
        for k in keys: oof[k][te] = c[k]
    np.savez('/tmp/rr/comps.npz', agents=np.array(agents), labels=labels.astype(str), dgold=dgold.astype(str),
             **{'oof_' + k: v for k, v in oof.items()}, **{'dev_' + k: v for k, v in res[-1][1].items()})
    print('saved')
