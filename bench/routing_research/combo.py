import sys, numpy as np, itertools
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.metrics import roc_auc_score
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
tag=sys.argv[1]; pred=sys.argv[2]; keys=sys.argv[3].split(','); R=[int(r) for r in sys.argv[4].split(',')]
dev=np.load(f'cache/{tag}_dev.npy',allow_pickle=True).item(); oof=np.load(f'cache/{tag}_oof.npy',allow_pickle=True).item()
def fpr_at(sc,oos,tpr=0.9):
    t=np.quantile(sc[oos],tpr); return (sc[~oos]<t).mean()
def z(k,src):
    m=oof[k][y!='fallback'].mean(); s=oof[k][y!='fallback'].std(); return (src[k]-m)/s
res=[]
for r in R:
    for c in itertools.combinations(keys,r):
        sd=sum(z(k,dev) for k in c); so=sum(z(k,oof) for k in c)
        s=summarize(dev[pred],sd,yd); so_s=summarize(oof[pred],so,y)
        res.append((s['acc_at_r90'],f"{'+'.join(c):60s} dev FPR@90 {fpr_at(sd,yd=='fallback'):.4f} acc@r90 {s['acc_at_r90']:.4f} acc@r95 {s['acc_at_r95']:.4f} | oof FPR@90 {fpr_at(so,y=='fallback'):.4f} acc@r90 {so_s['acc_at_r90']:.4f}"))
for a,l in sorted(res)[-15:]: print(l)
