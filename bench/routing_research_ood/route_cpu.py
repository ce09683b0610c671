import sys, time, json
sys.path.insert(0, '/work/wt-ood')
from threadpoolctl import threadpool_limits
import orchestrator.router as R
team = json.load(open('/work/wt-ood/orchestrator/seed/team.json'))['agents']
sdocs = {a['slug']: [*a['routing_examples'], *[x['title'] for x in a['articles']], *[t for x in a['articles'] for t in x.get('tags', [])], a['handoff_description']] for a in team if a['role'] == 'specialist'}
sfb = [t for a in team if a['role'] == 'fallback' for t in a['routing_examples']]
cases = [json.loads(l)['text'] for l in open('/tmp/ood/hwu/cases.jsonl')][:300]
with threadpool_limits(1):
    r = R.Router(sdocs, fallback_examples=sfb)
    cpu = []
    for t in cases:
        c = time.process_time(); r.route(t); cpu.append(time.process_time() - c)
cpu.sort(); print('seed router, 300 messages: median CPU ms per route', round(cpu[150] * 1000, 1))
