import json, sys, time
sys.path.insert(0, '/work/wt-ood')
from threadpoolctl import threadpool_limits
from orchestrator.encoder import load_encoder
from orchestrator.router import Router
team = json.load(open('/work/wt-ood/orchestrator/seed/team.json'))['agents']
docs = {a['slug']: [*a['routing_examples'], *[x['title'] for x in a['articles']], *[t for x in a['articles'] for t in x.get('tags', [])], a['handoff_description']] for a in team if a['role'] == 'specialist'}
fb = [t for a in team if a['role'] == 'fallback' for t in a['routing_examples']]
print(sum(map(len, docs.values())), 'texts', len(fb), 'fallback')
load_encoder()
with threadpool_limits(1):
    for label in ('cold (embeddings computed)', 'warm (embeddings cached)'):
        t = time.perf_counter(); r = Router(docs, fallback_examples=fb); print(label, round(time.perf_counter() - t, 2), 's')
for m in ["what's the weather in Paris?", "tell me a joke while I wait", "what's 17 times 23?", "I was charged twice", "the app crashes on startup", "Does Acme Cloud integrate with Slack?"]:
    print(m, r.route(m).agent, r.route(m).confidence)
