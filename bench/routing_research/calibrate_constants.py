"""Fix router_candidate.CALIBRATION by 5-fold CV on examples.jsonl (never dev). Prints JSON."""
import json, sys, time
sys.path.insert(0, '/tmp/routing')
import router_candidate as rc
from collections import defaultdict
docs = defaultdict(list); fb = []
for l in open('/work/shared/datasets/clinc150/examples.jsonl'):
    r = json.loads(l); (fb if r['agent'] == 'fallback' else docs[r['agent']]).append(r['text'])
out = {}
for mode, use in [('tfidf', False), ('minilm', True)]:
    t = time.time()
    r = rc.Router(docs, fb, seed=0, calibrate=True, use_embeddings=use)
    out[mode] = r.calib
    print(mode, 'calibrated in', round(time.time() - t), 's', r.calib, file=sys.stderr, flush=True)
print(json.dumps(out))
