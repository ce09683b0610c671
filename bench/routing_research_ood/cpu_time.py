"""CPU seconds (time.process_time, one BLAS thread) of training, load-independent."""
import sys, time, json
sys.path.insert(0, '/work/wt-ood')
from threadpoolctl import threadpool_limits
import orchestrator.router as R
from orchestrator.encoder import load_encoder
enc = load_encoder()
rows = [json.loads(l) for l in open('/tmp/ood/clinc10k.jsonl')]
docs = {}
for r in rows:
    if r['agent'] != 'fallback': docs.setdefault(r['agent'], []).append(r['text'])
fb = [r['text'] for r in rows if r['agent'] == 'fallback']
team = json.load(open('/work/wt-ood/orchestrator/seed/team.json'))['agents']
sdocs = {a['slug']: [*a['routing_examples'], *[x['title'] for x in a['articles']], *[t for x in a['articles'] for t in x.get('tags', [])], a['handoff_description']] for a in team if a['role'] == 'specialist'}
sfb = [t for a in team if a['role'] == 'fallback' for t in a['routing_examples']]
with threadpool_limits(1):
    for name, d, f in (('seed team', sdocs, sfb), ('seed team again', sdocs, sfb), ('clinc 10k', docs, fb), ('clinc 10k again', docs, fb)):
        c, w = time.process_time(), time.perf_counter(); r = R.Router(d, fallback_examples=f)
        print(name, 'cpu', round(time.process_time() - c, 1), 's wall', round(time.perf_counter() - w, 1), 's', flush=True)
    c = time.process_time(); n = 0
    for t in ["what's the weather in Paris?", "I was charged twice", "the app crashes on startup"] * 100:
        r.route(t); n += 1
    print('route cpu ms', round((time.process_time() - c) / n * 1000, 2))
