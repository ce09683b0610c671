import json, time, numpy as np, sys
sys.path.insert(0, '/work/wt-ood')
from threadpoolctl import threadpool_limits
from orchestrator.encoder import load_encoder
d = json.load(open('/tmp/clinc_full/data_full.json'))
wiki = open('/tmp/clinc_full/all_wiki_sents.txt').read().splitlines()
texts = sorted({t for split in d.values() for t, _ in split})
rng = np.random.default_rng(0)
wiki_s = [wiki[i] for i in rng.choice(len(wiki), 3000, replace=False)]
enc = load_encoder()
with threadpool_limits(1):
    t = time.time(); e = enc.encode(texts[:1000]); print('1000 texts', time.time() - t, flush=True)
    e = enc.encode(texts); w = enc.encode(wiki_s)
print('all', time.time() - t, len(texts))
np.save('/tmp/ood/emb.npy', e); json.dump(texts, open('/tmp/ood/texts.json', 'w'))
np.save('/tmp/ood/wemb.npy', w); json.dump(wiki_s, open('/tmp/ood/wiki.json', 'w'))
