import json, numpy as np
D='/work/shared/datasets/clinc150/'
def load():
    ex=[json.loads(l) for l in open(D+'examples.jsonl')]
    dv=[json.loads(l) for l in open(D+'dev_cases.jsonl')]
    return [e['text'] for e in ex],[e['agent'] for e in ex],[d['text'] for d in dv],[d['expected'] for d in dv]

def metrics(pred_agent, conf, gold, thr):
    """pred_agent: best non-fallback agent (or 'fallback'); conf: score, routed to fallback if conf<thr"""
    pred=np.where(np.asarray(conf)>=thr, np.asarray(pred_agent,dtype=object), 'fallback')
    gold=np.asarray(gold,dtype=object)
    ins=gold!='fallback'
    acc=(pred[ins]==gold[ins]).mean(); rec=(pred[~ins]=='fallback').mean()
    nf=(pred=='fallback').sum(); prec=((pred=='fallback')&~ins).sum()/max(nf,1)
    return acc,rec,prec

def curve(pred_agent, conf, gold, n=None):
    conf=np.asarray(conf); ths=np.unique(conf)
    out=[]
    for t in ths:
        a,r,p=metrics(pred_agent,conf,gold,t); out.append((t,a,r,p))
    return out

def summarize(pred_agent, conf, gold):
    c=curve(pred_agent,conf,gold)
    best=max(min(a-0.97,r-0.90) for t,a,r,p in c)
    def acc_at(rr):
        v=[a for t,a,r,p in c if r>=rr]; return max(v) if v else 0
    return dict(acc_at_r90=round(acc_at(0.90),4), acc_at_r80=round(acc_at(0.80),4), acc_at_r95=round(acc_at(0.95),4), margin=round(best,4))

def fast_curve(pred_agent, conf, gold):
    """vectorised: for each candidate threshold t (case routed if conf>=t) -> (t, in_acc, fb_recall, fb_precision)"""
    conf=np.asarray(conf,float); gold=np.asarray(gold,dtype=object); pred=np.asarray(pred_agent,dtype=object)
    ins=gold!='fallback'; correct=(pred==gold)&ins
    o=np.argsort(conf,kind='stable'); c=conf[o]
    ts=np.unique(c)
    # number with conf < t  (rejected) for each t
    k=np.searchsorted(c,ts,side='left')
    cum_oos=np.concatenate([[0],np.cumsum(~ins[o])]); cum_corr=np.concatenate([[0],np.cumsum(correct[o])])
    n_in=ins.sum(); n_oos=(~ins).sum()
    rej_oos=cum_oos[k]; rej=k
    acc=(correct.sum()-cum_corr[k])/n_in; rec=rej_oos/max(n_oos,1); prec=np.where(rej>0,rej_oos/np.maximum(rej,1),1.0)
    return ts,acc,rec,prec

def summarize(pred_agent, conf, gold):
    ts,acc,rec,prec=fast_curve(pred_agent,conf,gold)
    def acc_at(rr):
        m=rec>=rr; return float(acc[m].max()) if m.any() else 0.0
    return dict(acc_at_r90=round(acc_at(0.90),4), acc_at_r80=round(acc_at(0.80),4), acc_at_r95=round(acc_at(0.95),4), margin=round(float(np.max(np.minimum(acc-0.97,rec-0.90))),4))
