import sys, numpy as np, itertools
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.metrics import roc_auc_score
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
tag=sys.argv[1] if len(sys.argv)>1 else 'feats2'
dev=np.load(f'cache/{tag}_dev.npy',allow_pickle=True).item(); oof=np.load(f'cache/{tag}_oof.npy',allow_pickle=True).item()
def fpr_at(sc,oos,tpr=0.9):
    t=np.quantile(sc[oos],tpr); return (sc[~oos]<t).mean()
for k,v in dev.items():
    if 'pred' in k: print(k,'dev in-acc',(v==yd)[yd!='fallback'].mean(),'oof',(oof[k]==y)[y!='fallback'].mean()); continue
    print(f'{k:16s} dev AUROC {roc_auc_score(yd!="fallback",v):.4f} FPR@90 {fpr_at(v,yd=="fallback"):.4f} | oof AUROC {roc_auc_score(y!="fallback",oof[k]):.4f} FPR@90 {fpr_at(oof[k],y=="fallback"):.4f}')
