import sys, json, time
sys.path.insert(0, '/tmp/ood/old')
from pathlib import Path
from orchestrator.routing_eval import read_jsonl, evaluate, train
for ex in sys.argv[1:]:
    e = read_jsonl(Path(ex), ('text', 'agent')); c = read_jsonl(Path('/tmp/ood/hwu/cases.jsonl'), ('text', 'expected'))
    t = time.time(); r = train(e); el = time.time() - t
    print(ex, 'train', round(el, 1), evaluate(r, c), flush=True)
