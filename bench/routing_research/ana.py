import sys, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.metrics import roc_auc_score
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
dev=np.load('cache/feats_dev.npy',allow_pickle=True).item(); oof=np.load('cache/feats_oof.npy',allow_pickle=True).item()
def fpr_at(sc,oos,tpr=0.9):
    t=np.quantile(sc[oos],tpr)  # OOS should have low score; threshold where 90% OOS below
    return (sc[~oos]<t).mean()
for k,v in dev.items():
    if 'pred' in k: continue
    print(f'{k:12s} dev AUROC {roc_auc_score(yd!="fallback",v):.4f} FPR@TPR90 {fpr_at(v,yd=="fallback"):.4f} | oof AUROC {roc_auc_score(y!="fallback",oof[k]):.4f} FPR@90 {fpr_at(oof[k],y=="fallback"):.4f}')
print('tf_pred acc dev in', (dev['tf_pred']==yd)[yd!='fallback'].mean(),'em',(dev['em_pred']==yd)[yd!='fallback'].mean())
from scipy.stats import rankdata
def z(k,src,ref):  # standardize using in-scope stats of ref(oof)
    m=ref[k][y!='fallback'].mean(); s=ref[k][y!='fallback'].std(); return (src[k]-m)/s
import itertools
keys=['tf_max','tf_nfb','em_knn20','em_maha_int','em_nfb','em_knn1']
for r in [2,3,4]:
    for c in itertools.combinations(keys,r):
        sd=sum(z(k,dev,oof) for k in c); so=sum(z(k,oof,oof) for k in c)
        print(c, f'dev AUROC {roc_auc_score(yd!="fallback",sd):.4f} FPR@90 {fpr_at(sd,yd=="fallback"):.4f} oof FPR@90 {fpr_at(so,y=="fallback"):.4f}', summarize(dev['tf_pred'],sd,yd))
