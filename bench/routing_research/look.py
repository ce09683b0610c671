import sys, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
dev=np.load('cache/feats_dev.npy',allow_pickle=True).item(); oof=np.load('cache/feats_oof.npy',allow_pickle=True).item()
def z(k,src,ref):
    m=ref[k][y!='fallback'].mean(); s=ref[k][y!='fallback'].std(); return (src[k]-m)/s
c=('tf_max', 'em_knn20', 'em_nfb', 'em_knn1')
sd=sum(z(k,dev,oof) for k in c)
oos=yd=='fallback'; t=np.quantile(sd[oos],0.9)
print('thr',t)
o=np.argsort(-sd*oos)[:12]
print('--- OOS with highest in-scope score'); [print(f'{sd[i]:.2f} {dev["tf_pred"][i]:18s} {Xd[i]}') for i in o]
w=np.where(~oos & ((sd<t)|(dev['tf_pred']!=yd)))[0]
print('--- in-scope errors',len(w))
for i in w[np.argsort(sd[w])][:45]: print(f'{sd[i]:.2f} rej={sd[i]<t:d} gold={yd[i]:18s} pred={dev["tf_pred"][i]:18s} {Xd[i]}')
