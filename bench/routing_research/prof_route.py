import sys, json, time, cProfile, pstats
sys.path.insert(0,'/tmp/routing'); import router_candidate as rc
from collections import defaultdict
docs=defaultdict(list); fb=[]
for l in open('/work/shared/datasets/clinc150/examples.jsonl'):
    r=json.loads(l); (fb if r['agent']=='fallback' else docs[r['agent']]).append(r['text'])
# small subset for a fast profile
d2={a:v[:300] for a,v in docs.items()}
R=rc.Router(d2,fb); print(R.model.mem.dtype)
qs=[json.loads(l)['text'] for l in open('/work/shared/datasets/clinc150/dev_cases.jsonl')][:200]
cProfile.run('for q in qs: R.route(q)','/tmp/routing/prof2')
pstats.Stats('/tmp/routing/prof2').sort_stats('cumtime').print_stats(18)
