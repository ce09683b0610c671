"""Train router_candidate.Router on examples.jsonl, report the four metrics on dev_cases.jsonl + the curve.
usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python eval.py [--tfidf] [--calibrate]"""
import json, os, sys, time
from collections import defaultdict
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import router_candidate as rc

D = '/work/shared/datasets/clinc150/'
docs = defaultdict(list); fb = []
for l in open(D + 'examples.jsonl'):
    r = json.loads(l); (fb if r['agent'] == 'fallback' else docs[r['agent']]).append(r['text'])
dev = [json.loads(l) for l in open(D + 'dev_cases.jsonl')]
use = False if '--tfidf' in sys.argv else None

t = time.time()
router = rc.Router(docs, fb, seed=0, use_embeddings=use, calibrate='--calibrate' in sys.argv)
train_s = time.time() - t
router.route('warm up')

decs, ms = [], []
for d in dev:
    t = time.perf_counter(); dec = router.route(d['text']); ms.append(1000 * (time.perf_counter() - t))
    decs.append(dec)
gold = np.array([d['expected'] for d in dev], dtype=object)
top = np.array([x.ranked[0][0] for x in decs], dtype=object)
conf = np.array([x.confidence for x in decs])
ins = gold != 'fallback'

def at(thr):
    pred = np.where(conf >= thr, top, 'fallback')
    acc = (pred[ins] == gold[ins]).mean(); rec = (pred[~ins] == 'fallback').mean()
    nf = (pred == 'fallback').sum(); prec = ((pred == 'fallback') & ~ins).sum() / max(nf, 1)
    return acc, rec, prec

pred = np.array([x.agent or 'fallback' for x in decs], dtype=object)
acc = (pred[ins] == gold[ins]).mean(); rec = (pred[~ins] == 'fallback').mean()
prec = ((pred == 'fallback') & ~ins).sum() / max((pred == 'fallback').sum(), 1)
print(f'mode={router.mode} train_s={train_s:.1f} threshold={rc.THRESHOLD}')
print(f'in_scope_accuracy={acc:.4f} fallback_recall={rec:.4f} fallback_precision={prec:.4f} '
      f'ms_per_route={np.median(ms):.2f} (p90 {np.quantile(ms, .9):.2f})')
print(f'classifier-only in-scope accuracy (no rejection) = {(top[ins] == gold[ins]).mean():.4f}')
print('\ncurve (dev): confidence threshold -> in_scope_acc, fallback_recall, fallback_precision')
for thr in [0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9]:
    a, r, p = at(thr); print(f'  thr {thr:.2f}: acc {a:.4f} recall {r:.2f} precision {p:.2f}')
print('\nbest dev in-scope accuracy subject to fallback recall >= R (any threshold; for robustness only):')
ths = np.unique(conf)
res = [(t,) + at(t) for t in ths]
for R in [0.80, 0.85, 0.88, 0.90, 0.92, 0.95]:
    ok = [x for x in res if x[2] >= R]; b = max(ok, key=lambda x: x[1])
    print(f'  recall>={R:.2f}: acc {b[1]:.4f} (thr {b[0]:.3f})')
