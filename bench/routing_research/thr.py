import sys, json, numpy as np, itertools
sys.path.insert(0,'/tmp/routing'); from common import *
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
S=np.load(sys.argv[1],allow_pickle=True).item(); dev,oof=S[list(S)[0]]
keys=['fblogit','energy','submax','knn1','knn5','knn20']
mu={k:oof[k][y!='fallback'].mean() for k in keys}; sd={k:oof[k][y!='fallback'].std() for k in keys}
def Z(src,ks): return sum((src[k]-mu[k])/sd[k] for k in ks)
for ks in [['fblogit','knn5'],['fblogit','submax','knn5'],['fblogit','energy','submax','knn5'],keys]:
    so=Z(oof,ks); sdv=Z(dev,ks)
    ts,acc,rec,prec=fast_curve(oof['pred'],so,y)
    out=[]
    for rule in ['maxmin','r0.90','r0.92','r0.95','sum']:
        if rule=='maxmin': i=np.argmax(np.minimum(acc-0.97,rec-0.90))
        elif rule=='sum': i=np.argmax(acc+rec)
        else: i=np.where(rec>=float(rule[1:]))[0][0]
        t=ts[i]; a,r,p=metrics(dev['pred'],sdv,yd,t)
        out.append(f'{rule}: thr {t:.2f} oof({acc[i]:.4f},{rec[i]:.2f}) dev acc {a:.4f} rec {r:.2f} prec {p:.2f}')
    print('+'.join(ks)); [print('   ',o) for o in out]
