"""HWU64 (xliuhw/NLU-Evaluation-Data, CC BY 4.0), KFold_1: a six-agent registry with
out-of-scope cases from scenarios absent from training. Written before any measurement."""
import csv, io, json, random, subprocess, sys
B = 'CrossValidation/autoGeneFromRealAnno/autoGene_2018_03_22-13_01_25_169/CrossValidation/KFold_1'
def rows(part):
    names = subprocess.run(['git', 'ls-tree', '--name-only', f'HEAD:{B}/{part}'], capture_output=True, text=True).stdout.split()
    out = []
    for n in names:
        raw = subprocess.run(['git', 'show', f'HEAD:{B}/{part}/{n}'], capture_output=True, text=True).stdout
        for r in csv.DictReader(io.StringIO(raw), delimiter=';'):
            out.append((r['answer_from_anno'].strip(), r['scenario']))
    return [r for r in out if r[0]]
train, test = rows('trainset'), rows('testset/csv')
AGENTS = ['alarm', 'calendar', 'email', 'iot', 'lists', 'music']
FALLBACK_TOPICS = ['general', 'qa']  # what a fallback agent's examples would be about
rng = random.Random(0)
fb = [t for t, s in train if s in FALLBACK_TOPICS]; rng.shuffle(fb)
small = int(sys.argv[1]) if len(sys.argv) > 1 else 0
ex = []
for a in AGENTS:
    mine = [t for t, s in train if s == a]; rng.shuffle(mine)
    ex += [{'text': t, 'agent': a} for t in (mine[:small] if small else mine)]
ex += [{'text': t, 'agent': 'fallback'} for t in fb[:8 if small else 40]]
cases = [{'text': t, 'expected': s if s in AGENTS else 'fallback'} for t, s in test if s not in FALLBACK_TOPICS]
suffix = f'_small{small}' if small else ''
open(f'/tmp/ood/hwu/examples{suffix}.jsonl', 'w').write('\n'.join(json.dumps(r) for r in ex) + '\n')
open(f'/tmp/ood/hwu/cases.jsonl', 'w').write('\n'.join(json.dumps(r) for r in cases) + '\n')
print(len(ex), len(cases), sum(c['expected'] == 'fallback' for c in cases))
